// sextant-init-pending.json: written before the init request leaves, removed once the workspace holds the result.
// While it exists an init may have happened on the node that this workspace has not seen the answer of; the next
// `sextant init` goes back to the same node with the same measurement salt (so the cluster ID it is answered
// with can be checked) and fetches the result the node kept for its owner.
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { decodeBase64 } from '../../common/base64.js';
import { WorkspaceError } from './paths.js';

export const INIT_PENDING_FILE = 'sextant-init-pending.json';

export interface PendingInit {
  /** The endpoint the request went to, as the operator named it. */
  node: string;
  measurementSalt: Buffer;
  startedAt: Date;
}

function path(dir: string): string {
  return join(dir, INIT_PENDING_FILE);
}

export async function loadPendingInit(dir: string): Promise<PendingInit | undefined> {
  let text: string;
  try {
    text = await readFile(path(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new WorkspaceError(
      INIT_PENDING_FILE,
      `cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new WorkspaceError(INIT_PENDING_FILE, 'not valid JSON (remove it to start a new init)');
  }
  const salt = decodeBase64(doc.measurementSalt);
  if (typeof doc.node !== 'string' || doc.node === '') {
    throw new WorkspaceError(INIT_PENDING_FILE, '"node": expected the endpoint the init went to');
  }
  if (salt === undefined || salt.length !== 32) {
    throw new WorkspaceError(INIT_PENDING_FILE, '"measurementSalt": expected 32 bytes of base64');
  }
  const startedAt = new Date(String(doc.startedAt));
  if (Number.isNaN(startedAt.getTime())) {
    throw new WorkspaceError(INIT_PENDING_FILE, '"startedAt": expected an ISO 8601 time');
  }
  return { node: doc.node, measurementSalt: salt, startedAt };
}

export async function savePendingInit(dir: string, pending: PendingInit): Promise<void> {
  const doc = {
    node: pending.node,
    measurementSalt: pending.measurementSalt.toString('base64'),
    startedAt: pending.startedAt.toISOString(),
  };
  await writeFileAtomic(path(dir), `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
}

export async function clearPendingInit(dir: string): Promise<void> {
  await rm(path(dir), { force: true });
}
