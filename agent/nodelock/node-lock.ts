/** The part of the TPM the lock needs: extending PCR 15. */
export interface PcrExtender {
  extendPcr(index: number, digest: Buffer): Promise<void>;
}

export type LockHolder = 'init' | 'join';

export const CLUSTER_ID_PCR = 15;

export class NodeLockedError extends Error {
  constructor(readonly holder: LockHolder) {
    super(holder === 'init' ? 'node is already being initialized' : 'node is already joining a cluster');
    this.name = 'NodeLockedError';
  }
}

/**
 * The point of no return: the first caller (init server or join client) wins, every later caller is refused.
 * Taking the lock extends PCR 15 with the cluster ID, so from then on the node's quotes say which cluster it
 * belongs to. The check-and-set happens before any await, so two callers can never both pass.
 */
export class NodeLock {
  #holder: LockHolder | null = null;

  constructor(private readonly tpm: PcrExtender) {}

  get holder(): LockHolder | null {
    return this.#holder;
  }

  /** Takes the lock for `holder` and extends PCR 15; throws NodeLockedError if someone else got there first. */
  async acquire(holder: LockHolder, clusterId: Buffer): Promise<void> {
    if (clusterId.length !== 32) throw new RangeError('cluster ID: expected 32 bytes');
    if (this.#holder !== null) throw new NodeLockedError(this.#holder);
    this.#holder = holder;
    try {
      await this.tpm.extendPcr(CLUSTER_ID_PCR, clusterId);
    } catch (err) {
      // PCR 15 is untouched when the extend itself failed, so the node is still initializable.
      this.#holder = null;
      throw err;
    }
  }

  /** Marks the node as bootstrapped earlier (a rejoin): nobody may take the lock in this boot. */
  markTaken(holder: LockHolder): void {
    this.#holder ??= holder;
  }
}
