// What a node keeps of a cluster besides its node state: the cluster secrets (the master secret), the measurements
// the JoinService admits against, the JoinService's admissions and audit log, the sealed init reply. A reset (a
// bootstrap that was interrupted or failed) removes them all, with any temp file of an atomic write among them
// (one may hold the master secret), so nothing of a cluster that never came to be survives into the next one.
// The disk ID stays: a JoinService that admitted this node binds it to that disk.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { removeStaleTempFiles } from '../../common/atomic-file.js';

export const CLUSTER_FILES = ['cluster-secrets.json', 'measurements.json', 'init-reply.json', 'joinservice'];

/** Removes the cluster's files from `stateDir`; returns what was there. Run before anything else writes there. */
export async function removeClusterFiles(stateDir: string): Promise<string[]> {
  const removed = await removeStaleTempFiles(stateDir);
  for (const name of CLUSTER_FILES) {
    const path = join(stateDir, name);
    const existed = await rm(path, { recursive: true }).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return false;
        throw new Error(`reset: cannot remove ${path}: ${err.message}`);
      },
    );
    if (existed) removed.push(name);
  }
  return removed;
}
