// The state disk's ID this node joins with, persisted before the first join ticket is asked for. A JoinService
// binds an admission to the disk ID it was first shown; a node that drew a new ID on every start (or lost it in
// the reset after a failed `kubeadm join`) could never be admitted again. The file survives the agent's reset.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { DISK_UUID } from '../../common/contracts/disk-id.js';
import { statePath } from '../lifecycle/layout.js';

/**
 * The node's disk ID: read from `stateDir`, or drawn and written (fsync'd) before it is returned, so no ticket is
 * ever asked for with an ID the node could forget. A write that fails rejects: the join attempt fails and retries.
 */
export async function loadOrCreateDiskId(stateDir: string): Promise<string> {
  const path = statePath(stateDir, 'diskId');
  try {
    const text = (await readFile(path, 'utf8')).trim();
    if (DISK_UUID.test(text)) return text;
    // A torn or foreign file: no ticket was asked for with it (the write is atomic), so a new ID is safe.
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = randomUUID();
  await writeFileAtomic(path, `${id}\n`, { mode: 0o600 });
  return id;
}
