import { createHash } from 'node:crypto';

/** The PCR a node extends once with its cluster ID when it takes the node lock. */
export const CLUSTER_ID_PCR = 15;

const ZERO_PCR = Buffer.alloc(32);

/**
 * PCR 15 after extending a zero PCR with a 32-byte cluster ID: SHA-256(zeros32 ‖ clusterId). Every node of a cluster
 * reports this value, so the CLI's measurements, the join client's check of a JoinService and the node lock's
 * resume after a restart all compare against this one function.
 */
export function clusterPcrValue(clusterId: Buffer): Buffer {
  if (clusterId.length !== 32) throw new RangeError(`cluster ID: expected 32 bytes, got ${clusterId.length}`);
  return createHash('sha256').update(ZERO_PCR).update(clusterId).digest();
}

/** A PCR still at its reset value (all zeros): nothing was extended into it in this boot. */
export function isResetPcr(value: Buffer): boolean {
  return value.equals(ZERO_PCR);
}
