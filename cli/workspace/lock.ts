// One command at a time changes a workspace: two `init`s against two nodes of one workspace would both "succeed"
// and one cluster's admin key and master-secret binding would be lost. A lock file created exclusively says who
// holds the workspace; one left by a process that died (SIGKILL, power loss) is taken over.
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { link, open, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { faultPoint } from '../../common/fault-hook.js';
import { WorkspaceError } from './paths.js';

export const LOCK_FILE = '.sextant.lock';

interface Holder {
  pid: number;
  host: string;
  command: string;
  since: string;
  token: string;
}

export interface WorkspaceLock {
  /** Removes the lock (only if it is still ours). Also done at process exit. */
  release(): Promise<void>;
  /** Files of earlier lock attempts whose process is gone (killed between creating and linking), removed. */
  swept: string[];
}

/**
 * The files a lock attempt makes beside the lock: its own `<lock>.<pid>-<token>` before linking it, and
 * `<lock>.stale-<pid>-<token>` while taking over a dead holder's. The pid (absent in older names) says whose.
 */
const ATTEMPT_FILE = /^\.sextant\.lock\.(?:stale-)?(?:(\d+)-)?[0-9a-f]{16}$/;

export class WorkspaceLockedError extends WorkspaceError {
  override name = 'WorkspaceLockedError';
  constructor(readonly holder: Omit<Holder, 'token'>) {
    super(
      LOCK_FILE,
      `another sextant command holds this workspace: "${holder.command}" (pid ${holder.pid} on ${holder.host}, since ${holder.since}); wait for it to finish${holder.host === hostname() ? '' : ', or remove the lock file if that machine no longer runs it'}`,
    );
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseHolder(text: string): Holder | undefined {
  try {
    const h = JSON.parse(text) as Partial<Holder>;
    if (typeof h.pid === 'number' && typeof h.host === 'string' && typeof h.token === 'string') {
      return {
        pid: h.pid,
        host: h.host,
        command: String(h.command ?? '?'),
        since: String(h.since ?? '?'),
        token: h.token,
      };
    }
  } catch {
    // A torn lock file (crash while writing it) names nobody: stale.
  }
  return undefined;
}

/** A lock whose holder is gone: a process of this host that no longer runs, or a file naming nobody. */
function stale(holder: Holder | undefined): boolean {
  return holder === undefined || (holder.host === hostname() && !alive(holder.pid));
}

/** Removes the attempt files of processes of this host that no longer run; call only while holding the lock. */
async function sweepAttempts(dir: string, mine: string[]): Promise<string[]> {
  const swept: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const match = ATTEMPT_FILE.exec(name);
    if (!match || mine.includes(name)) continue;
    const path = join(dir, name);
    const holder = parseHolder(await readFile(path, 'utf8').catch(() => ''));
    if (holder && holder.host !== hostname()) continue;
    const pid = match[1] !== undefined ? Number(match[1]) : holder?.pid;
    // An older name with no readable holder names nobody: only a process killed mid-write leaves that.
    if (pid !== undefined && alive(pid)) continue;
    await rm(path, { force: true });
    swept.push(name);
  }
  return swept;
}

/** Takes the workspace for `command` ("init"), or throws WorkspaceLockedError naming who holds it. */
export async function lockWorkspace(dir: string, command: string): Promise<WorkspaceLock> {
  const path = join(dir, LOCK_FILE);
  const me: Holder = {
    pid: process.pid,
    host: hostname(),
    command,
    since: new Date().toISOString(),
    token: randomBytes(8).toString('hex'),
  };
  const tmp = `${path}.${me.pid}-${me.token}`;
  const aside = `${path}.stale-${me.pid}-${me.token}`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(me)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  faultPoint('lock:before-link');
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        // link(2) fails rather than replace: exactly one of two racing commands gets the name.
        await link(tmp, path);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const current = parseHolder(await readFile(path, 'utf8').catch(() => ''));
      if (!stale(current) || attempt >= 2) {
        throw new WorkspaceLockedError(current ?? { pid: 0, host: '?', command: '?', since: '?' });
      }
      // Move the stale lock aside atomically; if a live one was moved instead (a race), put it back and yield.
      await rename(path, aside).catch(() => {});
      const moved = parseHolder(await readFile(aside, 'utf8').catch(() => ''));
      if (moved && !stale(moved)) {
        await link(aside, path).catch(() => {});
        await rm(aside, { force: true });
        throw new WorkspaceLockedError(moved);
      }
      await rm(aside, { force: true });
    }
  } finally {
    await rm(tmp, { force: true });
  }
  const swept = await sweepAttempts(dir, [basename(tmp), basename(aside)]);

  const ours = (): boolean => {
    try {
      return parseHolder(readFileSync(path, 'utf8'))?.token === me.token;
    } catch {
      return false;
    }
  };
  const onExit = () => {
    if (ours()) rmSync(path, { force: true });
  };
  process.on('exit', onExit);
  return {
    swept,
    async release() {
      process.off('exit', onExit);
      if (ours()) await unlink(path).catch(() => {});
    },
  };
}
