import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { writeFileAtomic } from './fsutil.js';
import type { Rootfs } from './paths.js';

export const DAEMON_SUBCOMMAND = '__standin-apiserver';
/** The pid of the run that owns the node; its API-server daemon exits once that process is gone. */
export const OWNER_PID_ENV = 'KUBEADM_STANDIN_OWNER_PID';

export function daemonPid(rootfs: Rootfs): number | undefined {
  if (!existsSync(rootfs.pidFile)) return undefined;
  const pid = Number(readFileSync(rootfs.pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** True while `pid` runs; a zombie (exited, not yet reaped) counts as gone. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/** Starts this same executable, detached, as the API server of `rootfs`. */
export function startDaemon(rootfs: Rootfs): number {
  mkdirSync(rootfs.runDir, { recursive: true });
  rmSync(`${rootfs.runDir}/apiserver.ready`, { force: true });
  const log = openSync(rootfs.logFile, 'a');
  const script = process.argv[1]!;
  const child = spawn(process.execPath, [script, DAEMON_SUBCOMMAND, '--rootfs', rootfs.dir], {
    detached: true,
    stdio: ['ignore', log, log],
    env: {
      ...process.env,
      KUBEADM_STANDIN_LOG: '',
      KUBEADM_STANDIN_FAIL_PHASE: '',
      KUBEADM_STANDIN_HANG_PHASE: '',
    },
  });
  closeSync(log);
  child.unref();
  writeFileAtomic(rootfs.pidFile, `${child.pid}\n`);
  return child.pid!;
}

/** SIGTERM, then SIGKILL after `graceMs`; removes the pid file. */
export async function stopDaemon(rootfs: Rootfs, graceMs = 3000): Promise<boolean> {
  const pid = daemonPid(rootfs);
  if (pid === undefined) return false;
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
    const deadline = Date.now() + graceMs;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (alive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  rmSync(rootfs.pidFile, { force: true });
  rmSync(`${rootfs.runDir}/apiserver.ready`, { force: true });
  return true;
}

export function logTail(rootfs: Rootfs, lines = 10): string {
  if (!existsSync(rootfs.logFile)) return '';
  return readFileSync(rootfs.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}
