import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { faultPoint } from './fault-hook.js';

export interface WriteOptions {
  /** File mode; secrets use 0o600. */
  mode?: number;
}

/**
 * Temp files of atomic writes are named `.<name>.<12 hex>.tmp` (and `.new` for exclusive creates): a later run can
 * tell them from anything else in the directory and remove what a killed process left.
 */
const TEMP_NAME = /^\..+\.[0-9a-f]{12}\.(tmp|new)$/;

/** Temp files being written right now: removed on any exit of the process, a SIGINT's included. */
const inFlight = new Set<string>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  // 'exit' handlers must be synchronous; one of these files may hold an admin key or a master secret.
  process.on('exit', () => {
    for (const path of inFlight) rmSync(path, { force: true });
  });
}

/** Names a temp file beside `path` and tracks it until `release`; the name matches TEMP_NAME. */
export function trackTempFile(path: string, suffix: 'tmp' | 'new' = 'tmp'): { tmp: string; release(): void } {
  hookExit();
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.${suffix}`);
  inFlight.add(tmp);
  return { tmp, release: () => inFlight.delete(tmp) };
}

/**
 * Removes temp files of atomic writes that a killed process left in `dir` (SIGKILL, power loss: no exit hook ran).
 * Call only while holding whatever keeps other writers out of `dir` (the workspace lock), or with `olderThanMs`.
 * Returns the names removed.
 */
export async function removeStaleTempFiles(
  dir: string,
  options: { olderThanMs?: number } = {},
): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const removed: string[] = [];
  const now = Date.now();
  for (const name of names) {
    if (!TEMP_NAME.test(name)) continue;
    const path = join(dir, name);
    if (inFlight.has(path)) continue;
    const info = await lstat(path).catch(() => undefined);
    if (!info?.isFile()) continue;
    if (options.olderThanMs !== undefined && now - info.mtimeMs < options.olderThanMs) continue;
    await rm(path, { force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Writes a file so that readers see either the old or the new content, never a torn one, even across a crash:
 * temporary file in the same directory, fsync, rename, fsync of the directory. The temp file is removed on every
 * way out: a failed write, and the process exiting mid-write (see trackTempFile).
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: WriteOptions = {},
): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const { tmp, release } = trackTempFile(path);
  const mode = options.mode ?? 0o644;
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.writeFile(data);
      // open() applies the umask; chmod makes the mode exact.
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    faultPoint(`rename:${basename(path)}`);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  } finally {
    release();
  }
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}
