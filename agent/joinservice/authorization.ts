// Who a joining node is and what it may have, decided from what the operator controls (the inventory `create`
// signed, the cluster's own admission records) and what the TPM proved (its EK, its PCR 15) — never from the
// request. Pure decisions over narrow inputs, so every rule is a row in a table test.
import * as grpc from '@grpc/grpc-js';
import type { NodeRole } from '../../common/contracts/node-role.js';
import type { InventoryNode } from '../../common/contracts/owner.js';
import { StatusError } from '../../common/grpc.js';
import type { Admission, AdmissionRegistry } from './admissions.js';

/** A request the JoinService refuses, with the gRPC status it answers. */
export class Refusal extends StatusError {
  override name = 'Refusal';
}

/**
 * What happens to a node whose EK the inventory does not list (an autoscaled worker, a node added after `create`):
 * `worker` admits it as a worker named after its EK; `refuse` admits inventory nodes only.
 */
export type UnlistedPolicy = 'worker' | 'refuse';

/** The operator's inventory, verified (common/contracts/owner.ts verifyInventory): nodes by EK and by name. */
export class Inventory {
  readonly #byEk = new Map<string, InventoryNode>();
  readonly #byName = new Map<string, InventoryNode>();

  constructor(
    nodes: readonly InventoryNode[],
    /** The signed serial it was taken at (0: none taken); a joining control plane starts its floor there. */
    readonly serial = 0,
  ) {
    for (const n of nodes) {
      for (const ek of n.eks) this.#byEk.set(ek, n);
      this.#byName.set(n.name, n);
    }
  }

  byEk(ek: string): InventoryNode | undefined {
    return this.#byEk.get(ek);
  }

  byName(name: string): InventoryNode | undefined {
    return this.#byName.get(name);
  }

  get size(): number {
    return this.#byEk.size;
  }
}

/** The name an unlisted node gets: derived from its EK, so it is stable across rejoins and unique per TPM. */
export function unlistedNodeName(ek: string): string {
  return `node-${ek.slice(0, 16)}`;
}

export interface NodeIdentity {
  /**
   * The EK the node's admission is recorded under: the inventory's first EK of that TPM (whichever of its EKs it
   * attested with), or the presented one for an unlisted node.
   */
  ek: string;
  nodeName: string;
  role: NodeRole;
  /** whether the inventory lists this EK */
  listed: boolean;
}

/** Name and role for an EK: the inventory's, or the unlisted policy's. */
export function identify(ek: string, inventory: Inventory, unlisted: UnlistedPolicy): NodeIdentity {
  const listed = inventory.byEk(ek);
  if (listed) return { ek: listed.eks[0] ?? ek, nodeName: listed.name, role: listed.role, listed: true };
  if (unlisted === 'refuse') {
    throw new Refusal(
      grpc.status.PERMISSION_DENIED,
      `this TPM (EK ${short(ek)}) is not in the operator's inventory, and this cluster admits inventory nodes only`,
    );
  }
  const nodeName = unlistedNodeName(ek);
  const taken = inventory.byName(nodeName);
  if (taken) {
    throw new Refusal(
      grpc.status.PERMISSION_DENIED,
      `the name ${nodeName} derived from this TPM's EK is an inventory node's (${taken.name})`,
    );
  }
  return { ek, nodeName, role: 'worker', listed: false };
}

function short(ek: string): string {
  return `${ek.slice(0, 16)}…`;
}

const ZERO_PCR = Buffer.alloc(32);

export interface JoinClaim {
  ek: string;
  /** PCR 15 as the node's quote showed it */
  pcr15: Buffer;
  diskUuid: string;
}

/**
 * Decides a join: the node must be fresh (PCR 15 zero: it took no node lock, belongs to no cluster); its EK may
 * hold one name and one disk, and neither may be held by another EK. A pending admission of the same EK is
 * replaced (the node restarted before it confirmed); a confirmed one admits the same disk only (a lost ticket).
 */
export function authorizeJoin(claim: JoinClaim, who: NodeIdentity, registry: AdmissionRegistry): void {
  if (!claim.pcr15.equals(ZERO_PCR)) {
    throw new Refusal(
      grpc.status.PERMISSION_DENIED,
      `PCR 15 is ${claim.pcr15.toString('hex')}, not zero: this node already took a node lock (belongs to a cluster); only a fresh node joins`,
    );
  }
  const own = registry.get(claim.ek);
  if (own?.state === 'confirmed' && own.diskUuid !== claim.diskUuid) {
    throw new Refusal(
      grpc.status.FAILED_PRECONDITION,
      `this TPM joined before (as ${own.nodeName}, confirmed) with another state disk; rejoin instead`,
    );
  }
  const nameHolder = registry.holderOfName(who.nodeName);
  if (nameHolder && nameHolder.ek !== claim.ek) {
    throw new Refusal(
      grpc.status.PERMISSION_DENIED,
      `node name ${who.nodeName} is registered to another TPM (EK ${short(nameHolder.ek)})`,
    );
  }
  const diskHolder = registry.holderOfDisk(claim.diskUuid);
  if (diskHolder && diskHolder.ek !== claim.ek) {
    throw new Refusal(
      grpc.status.PERMISSION_DENIED,
      `state disk ${claim.diskUuid} is registered to another TPM (${diskHolder.nodeName})`,
    );
  }
}

/**
 * Decides a rejoin or a join confirmation: the EK must have an admission, with this very disk, and PCR 15 must
 * show this cluster (the node holds its lock for this cluster, not for another).
 */
export function authorizeReturn(
  what: 'rejoin' | 'confirm',
  claim: JoinClaim,
  clusterPcr: Buffer,
  registry: AdmissionRegistry,
): Admission {
  const own = registry.get(claim.ek);
  if (!own) {
    throw new Refusal(
      grpc.status.PERMISSION_DENIED,
      `no admission for this TPM (EK ${short(claim.ek)}): it never joined here`,
    );
  }
  if (own.diskUuid !== claim.diskUuid) {
    throw new Refusal(grpc.status.PERMISSION_DENIED, 'disk_uuid is not the disk this TPM joined with');
  }
  if (!claim.pcr15.equals(clusterPcr)) {
    throw new Refusal(
      grpc.status.PERMISSION_DENIED,
      `PCR 15 is ${claim.pcr15.toString('hex')}, not this cluster's value: the node did not take its lock for this cluster${what === 'rejoin' ? ' (extend it before a rejoin)' : ''}`,
    );
  }
  return own;
}
