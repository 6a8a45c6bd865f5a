// Whether `sextant init` may run in this workspace. A pending init record means an init this workspace sent has no
// result here yet, whatever else a killed run already wrote (sextant-admin.conf, sextant-state.yaml): the plain
// rerun finishes it, so it is not refused as "already initialized" and needs no --force.
import { loadPendingInit } from '../workspace/init-pending.js';
import { assertNotInitialized as assertNoCluster } from '../workspace/workspace.js';

/** Refuses an initialized workspace unless `force` or an init of its own is still pending. */
export async function assertNotInitialized(dir: string, force: boolean, what: string): Promise<void> {
  if (await loadPendingInit(dir)) return;
  await assertNoCluster(dir, force, what);
}
