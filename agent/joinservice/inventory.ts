// Which operator inventory the JoinService admits by: the metadata's, only if the cluster's own owner key signed it
// for this cluster, and never one with a lower serial than an inventory it has already taken.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file.js';
import {
  type InventoryNode,
  inventorySchema,
  ownerPublicKeyText,
  parseOwnerPublicKey,
  type SignedInventory,
  verifyInventory,
} from '../../common/contracts/owner.js';
import { readTextIfExists } from '../../common/read-if-exists.js';
import { parseWith } from '../../common/schema.js';
import { statePath } from '../lifecycle/layout.js';
import type { Logger } from '../log/index.js';
import { ADMISSIONS_FILE } from './admissions.js';
import { Inventory } from './authorization.js';
import { SerialFloor } from './serial-floor.js';

/** What the floor's MAC is bound to, so the measurements floor file cannot stand in for it. */
const FLOOR_KIND = 'inventory';

/** The nodes of `signed`, if the owner key (the cluster's, from its secrets — not the metadata's) signed it for us. */
function verifiedNodes(
  signed: SignedInventory,
  ownerSeed: Buffer | undefined,
): { nodes: InventoryNode[] } | { refused: string } {
  if (!ownerSeed)
    return {
      refused: 'the cluster secrets hold no owner key: the inventory cannot be verified and is ignored',
    };
  try {
    return { nodes: verifyInventory(signed, parseOwnerPublicKey(ownerPublicKeyText(ownerSeed))) };
  } catch (err) {
    return { refused: (err as Error).message };
  }
}

/** Where a JoinService keeps the inventory it took across restarts: the signed document and its serial floor. */
export interface InventoryKeeper {
  /** The serial nothing below is taken. */
  readonly serial: number;
  /** The inventory taken before the restart, verified again; none when there is none or it is below the floor. */
  readonly kept?: { serial: number; nodes: InventoryNode[] };
  /** Persists `signed` as the inventory taken and raises the floor to its serial. */
  keep(signed: SignedInventory): Promise<void>;
}

/**
 * The inventory for each join: the metadata's current one when it verifies and its serial is not below the highest
 * this JoinService has taken (kept by `keeper` across restarts when given, in memory otherwise). Anything else — a
 * forged, foreign or older inventory, none, or metadata that cannot be read — leaves the last inventory taken in
 * place (before any was taken: every node unlisted, workers at most) and says why, once per distinct inventory.
 */
export function inventorySource(
  read: (() => Promise<SignedInventory | undefined>) | undefined,
  ownerSeed: Buffer | undefined,
  log: Logger,
  keeper?: InventoryKeeper,
): () => Promise<Inventory> {
  const kept = keeper?.kept;
  let taken = kept
    ? { serial: kept.serial, inventory: new Inventory(kept.nodes, kept.serial) }
    : { serial: keeper?.serial ?? 0, inventory: new Inventory([], keeper?.serial ?? 0) };
  let last: string | undefined;
  // one decision at a time: two joins must not raise the floor out of order
  let queue: Promise<unknown> = Promise.resolve();
  const decide = async (): Promise<Inventory> => {
    const signed = await read?.().catch((err: Error) => {
      log.error(`operator inventory: cannot read the metadata: ${err.message}`);
      return null;
    });
    if (signed === null) return taken.inventory;
    const key = signed ? signed.signature : '';
    if (last === key) return taken.inventory;
    last = key;
    if (!signed) {
      log.warn(
        taken.serial > 0
          ? `no operator inventory in the metadata: keeping inventory serial ${taken.serial}`
          : 'no operator inventory in the metadata: every node is unlisted (worker at most)',
      );
      return taken.inventory;
    }
    const keeping =
      taken.serial > 0
        ? `keeping inventory serial ${taken.serial}`
        : 'every node is unlisted (worker at most)';
    const verified = verifiedNodes(signed, ownerSeed);
    if ('refused' in verified) {
      log.error(`operator inventory refused, ${keeping}: ${verified.refused}`);
      return taken.inventory;
    }
    if (signed.serial < taken.serial) {
      log.error(
        `operator inventory refused, ${keeping}: its serial ${signed.serial} is below serial ${taken.serial} this JoinService has taken (an older inventory put back into the metadata)`,
      );
      return taken.inventory;
    }
    try {
      // on disk before it counts: a crash never leaves an inventory in use above the floor
      await keeper?.keep(signed);
    } catch (err) {
      last = undefined;
      log.error(
        `operator inventory serial ${signed.serial} not taken, ${keeping}: ${(err as Error).message}`,
      );
      return taken.inventory;
    }
    taken = { serial: signed.serial, inventory: new Inventory(verified.nodes, signed.serial) };
    log.info('operator inventory taken', { serial: signed.serial, nodes: verified.nodes.length });
    return taken.inventory;
  };
  return () => {
    const next = queue.then(decide);
    queue = next.catch(() => {});
    return next;
  };
}

export interface InventorySetup {
  stateDir: string;
  /** The inventory as this node's metadata carries it now (read anew for every join). */
  read?: () => Promise<SignedInventory | undefined>;
  ownerSeed: Buffer | undefined;
  /** The cluster's MAC key for serial floors (common/keys.ts deriveMeasurementsMacKey). */
  macKey: Uint8Array;
  log: Logger;
  /**
   * The serial the cluster had taken when this control plane joined (its ticket's cluster secrets,
   * `inventorySerial`): the floor starts there, so this node's metadata cannot hand it an older inventory.
   */
  atLeast?: number;
}

/**
 * The inventory source a (re)starting JoinService runs with: the inventory it took before (`inventory.json`) and
 * its floor, from the state directory. Throws, serving nothing, when the floor was edited, or removed while the
 * JoinService has admitted nodes or kept an inventory (a first start has neither): a restart must not forget which
 * inventory serial it had taken.
 */
export async function openInventorySource(setup: InventorySetup): Promise<() => Promise<Inventory>> {
  const path = statePath(setup.stateDir, 'inventoryFloor');
  const floor = await SerialFloor.open(path, FLOOR_KIND, setup.macKey);
  const keptPath = statePath(setup.stateDir, 'inventory');
  const witness = [join(statePath(setup.stateDir, 'joinService'), ADMISSIONS_FILE), keptPath].find((p) =>
    existsSync(p),
  );
  if (!floor.exists && witness) {
    throw new Error(
      `${path}: the inventory serial floor is missing beside ${witness}: refusing to start the JoinService below an inventory serial it no longer knows (restore the file, or reset the node)`,
    );
  }
  // written at the first start: a JoinService that has admitted nodes or taken an inventory always has one
  await floor.raise(setup.atLeast ?? 0);
  const kept = await keptInventory(keptPath, floor.serial, setup.ownerSeed, setup.log);
  if (kept) await floor.raise(kept.serial);
  const keeper: InventoryKeeper = {
    get serial() {
      return floor.serial;
    },
    ...(kept ? { kept } : {}),
    async keep(signed) {
      // the document first: a crash between the two leaves it above the floor, which the next start takes
      await writeFileAtomic(keptPath, `${JSON.stringify(signed)}\n`, { mode: 0o600 });
      await floor.raise(signed.serial);
    },
  };
  return inventorySource(setup.read, setup.ownerSeed, setup.log, keeper);
}

/** The inventory a JoinService took before its restart, if it still verifies and is not below the floor. */
async function keptInventory(
  path: string,
  floor: number,
  ownerSeed: Buffer | undefined,
  log: Logger,
): Promise<{ serial: number; nodes: InventoryNode[] } | undefined> {
  const text = await readTextIfExists(path);
  if (text === undefined) return undefined;
  let signed: SignedInventory;
  try {
    signed = parseWith(inventorySchema, JSON.parse(text));
  } catch (err) {
    log.error(`${path}: the inventory taken before the restart is ignored: ${(err as Error).message}`);
    return undefined;
  }
  const verified = verifiedNodes(signed, ownerSeed);
  if ('refused' in verified) {
    log.error(`${path}: the inventory taken before the restart is ignored: ${verified.refused}`);
    return undefined;
  }
  if (signed.serial < floor) {
    log.error(
      `${path}: the inventory taken before the restart is ignored: its serial ${signed.serial} is below the floor ${floor}`,
    );
    return undefined;
  }
  return { serial: signed.serial, nodes: verified.nodes };
}

/**
 * The cluster-secrets file a control-plane ticket carries, with the inventory serial this JoinService has taken
 * (never lowering one the file holds); unchanged when none was taken.
 */
export function withInventorySerial(file: Buffer, serial: number): Buffer {
  if (serial <= 0) return file;
  // the file is this node's own, written by serializeClusterSecrets: a JSON object
  const doc = JSON.parse(file.toString('utf8')) as { inventorySerial?: number };
  return Buffer.from(JSON.stringify({ ...doc, inventorySerial: Math.max(doc.inventorySerial ?? 0, serial) }));
}
