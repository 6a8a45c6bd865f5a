// The workspace as a whole: where it is, whether it already holds a cluster, the admin kubeconfig.
import { access } from 'node:fs/promises';
import { resolve } from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { ADMIN_CONF_FILE, STATE_FILE, WorkspaceError, workspacePaths } from './paths.js';

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * True when the workspace holds an initialized cluster: `init` wrote its state or the admin kubeconfig. Either
 * alone counts, so a crash between the two writes still protects the cluster from a second init.
 */
export async function isInitialized(dir: string): Promise<boolean> {
  const p = workspacePaths(dir);
  return (await exists(p.state)) || (await exists(p.adminConf));
}

/** Refuses to go on in an initialized workspace unless `force`; the message says how to override. */
export async function assertNotInitialized(dir: string, force: boolean, what: string): Promise<void> {
  if (force || !(await isInitialized(dir))) return;
  throw new WorkspaceError(
    STATE_FILE,
    `${resolve(dir)} already holds an initialized cluster; refusing to ${what} (use --force to override, or a new workspace directory)`,
  );
}

/** Writes the cluster's admin kubeconfig, 0600: it holds a client key with cluster-admin rights. */
export async function writeAdminConf(dir: string, kubeconfig: string | Uint8Array): Promise<void> {
  if (kubeconfig.length === 0)
    throw new WorkspaceError(ADMIN_CONF_FILE, 'refusing to write an empty kubeconfig');
  await writeFileAtomic(workspacePaths(dir).adminConf, kubeconfig, { mode: 0o600 });
}
