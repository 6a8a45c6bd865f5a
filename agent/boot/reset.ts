import type { Logger } from '../log/index.js';
import type { NodeStateStore } from '../state/node-state.js';

export interface ResetDeps {
  log: Logger;
  kubeadm: { reset(): Promise<void> };
  state: Pick<NodeStateStore, 'clear'>;
  /** The cluster's own files (secrets, measurements, JoinService files, init reply); returns the names removed. */
  clusterFiles?: { clear(): Promise<string[]> };
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
  const removed = (await deps.clusterFiles?.clear()) ?? [];
  if (removed.length > 0) {
    deps.log.info('removed the files of the cluster that never came to be', { files: removed.join(', ') });
  }
  await deps.state.clear();
  deps.log.info('stale bootstrap state removed; the node is initializable again');
}
