// Which operator inventory the JoinService admits by: the metadata's, only if the cluster's own owner key signed it.
import {
  type InventoryNode,
  ownerPublicKeyText,
  parseOwnerPublicKey,
  type SignedInventory,
  verifyInventory,
} from '../../common/contracts/owner.js';
import type { Logger } from '../log/index.js';
import { Inventory } from './authorization.js';

/**
 * The inventory the JoinService admits by: the metadata's, if the owner key (the cluster's, from its secrets — not
 * the metadata's) signed it. Anything else admits no inventory node: a forged or foreign inventory, or none, leaves
 * every node to the unlisted policy (workers at most), and says why.
 */
function verifiedInventory(
  signed: SignedInventory | undefined,
  ownerSeed: Buffer | undefined,
  log: Logger,
): InventoryNode[] {
  if (!signed) {
    log.warn('no operator inventory in the metadata: every node is unlisted (worker at most)');
    return [];
  }
  if (!ownerSeed) {
    log.error('the cluster secrets hold no owner key: the inventory cannot be verified and is ignored');
    return [];
  }
  try {
    return verifyInventory(signed, parseOwnerPublicKey(ownerPublicKeyText(ownerSeed)));
  } catch (err) {
    log.error(`operator inventory refused, every node is unlisted: ${(err as Error).message}`);
    return [];
  }
}

/**
 * The inventory for each join: the metadata's current one, verified once per distinct signature (a failure is said
 * once, not per join).
 */
export function inventorySource(
  read: (() => Promise<SignedInventory | undefined>) | undefined,
  ownerSeed: Buffer | undefined,
  log: Logger,
): () => Promise<Inventory> {
  let last: { key: string; inventory: Inventory } | undefined;
  return async () => {
    const signed = await read?.().catch((err: Error) => {
      log.error(`operator inventory: cannot read the metadata: ${err.message}`);
      return undefined;
    });
    const key = signed ? signed.signature : '';
    if (last?.key !== key)
      last = { key, inventory: new Inventory(verifiedInventory(signed, ownerSeed, log)) };
    return last.inventory;
  };
}
