import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { removeStaleTempFiles } from '../../common/atomic-file.js';
import type { Logger } from '../log/index.js';
import type { NodeStateStore } from '../state/node-state.js';
import { CLUSTER_FILES } from './layout.js';

/**
 * Removes the cluster's files (layout.ts, rule `cluster`) from `stateDir`, with any temp file of an atomic write
 * among them (one may hold the master secret); returns what was there. Run before anything else writes there.
 */
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

export interface ResetDeps {
  log: Logger;
  kubeadm: { reset(): Promise<void> };
  state: Pick<NodeStateStore, 'clear'>;
  /** The agent's state directory, laid out as layout.ts says. */
  stateDir: string;
}

/**
 * Cleans up what an interrupted or failed bootstrap left (decideBoot's `reset`, only ever with PCR 15 still zero),
 * so the node is initializable again. kubeadm reset is best effort: on a node where kubeadm never ran, or is not
 * installed yet, it fails and there is nothing of Kubernetes to undo. The state goes in any case; a failure to
 * remove it stops the start, since the next boot would decide the same again.
 */
export async function resetStaleBootstrap(deps: ResetDeps): Promise<void> {
  await deps.kubeadm.reset().catch((err: Error) => deps.log.warn(`kubeadm reset: ${err.message}`));
  // Before the state: should this fail, the next start still finds the state and resets again.
  const removed = await removeClusterFiles(deps.stateDir);
  if (removed.length > 0) {
    deps.log.info('removed the files of the cluster that never came to be', { files: removed.join(', ') });
  }
  await deps.state.clear();
  deps.log.info('stale bootstrap state removed; the node is initializable again');
}
