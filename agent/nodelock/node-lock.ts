import { CLUSTER_ID_PCR, clusterPcrValue, isResetPcr } from '../../common/cluster-pcr.js';

export { CLUSTER_ID_PCR, clusterPcrValue };

/** The part of the TPM the lock needs: PCR 15, read and extended. */
export interface ClusterPcr {
  readPcrs(indices: number[]): Promise<Map<number, Buffer>>;
  extendPcr(index: number, digest: Buffer): Promise<void>;
}

export type LockHolder = 'init' | 'join';

export class NodeLockedError extends Error {
  constructor(readonly holder: LockHolder) {
    super(holder === 'init' ? 'node is already being initialized' : 'node is already joining a cluster');
    this.name = 'NodeLockedError';
  }
}

/** PCR 15 holds another cluster than the one the node's state names: only a reboot (PCR reset) can clear it. */
export class ClusterPcrMismatchError extends Error {
  constructor() {
    super('PCR 15 shows another cluster than this node joined');
    this.name = 'ClusterPcrMismatchError';
  }
}

/**
 * The point of no return: the first caller (init server or join client) wins, every later caller is refused.
 * Taking the lock extends PCR 15 with the cluster ID, so from then on the node's quotes say which cluster it
 * belongs to. The check-and-set happens before any await, so two callers can never both pass.
 */
export class NodeLock {
  #holder: LockHolder | null = null;

  constructor(private readonly tpm: ClusterPcr) {}

  get holder(): LockHolder | null {
    return this.#holder;
  }

  /** Whether PCR 15 is still at its reset value: nothing took the lock in this boot. */
  async pristine(): Promise<boolean> {
    return isResetPcr(await this.#read());
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

  /**
   * A node bootstrapped before comes back to its cluster: after a reboot PCR 15 is zero and is extended again;
   * after an agent restart within the same boot it must already show this cluster, and nobody may take the lock.
   * Throws ClusterPcrMismatchError when PCR 15 names another cluster.
   */
  async resume(clusterId: Buffer): Promise<void> {
    const current = await this.#read();
    if (isResetPcr(current)) {
      await this.acquire('join', clusterId);
      return;
    }
    if (!current.equals(clusterPcrValue(clusterId))) throw new ClusterPcrMismatchError();
    this.#holder ??= 'join';
  }

  async #read(): Promise<Buffer> {
    const value = (await this.tpm.readPcrs([CLUSTER_ID_PCR])).get(CLUSTER_ID_PCR);
    if (!value) throw new Error(`TPM returned no value for PCR ${CLUSTER_ID_PCR}`);
    return value;
  }
}
