// Test harness: one software TPM (swtpm) per call, on loopback, with its own state directory.
// Certificates come from a PRIVATE swtpm-localca CA so the system CA under /var/lib/swtpm-localca is never touched.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ensureLocalCa, manufactureTpm } from '../../cli/provider/qemu/swtpm.js';
import { freePortPair } from './ports.js';

/** The private swtpm-localca CA (root + intermediate PEM text). */
export interface SwtpmCa {
  dir: string;
  rootPem: string;
  issuerPem: string;
}

export interface Swtpm {
  tcti: string;
  port: number;
  ctrlPort: number;
  stateDir: string;
  ca: SwtpmCa;
  stop(): Promise<void>;
  /** Same state, new process: what a node reboot looks like to the TPM. */
  restart(): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;
const PORT_ATTEMPTS = 8;

// Everything still alive or on disk when the process ends; the exit hook clears it synchronously.
const livePids = new Set<number>();
const tempDirs = new Set<string>();
let hooked = false;

function cleanupNow(): void {
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  livePids.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', cleanupNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      cleanupNow();
      // Only take over the default "die on signal" when nobody else handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

async function makeTempDir(prefix: string): Promise<string> {
  installExitHook();
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

function forgetTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/**
 * Creates (or reuses, when `dir` already holds one) a private swtpm-localca CA: the QEMU provider's own
 * (cli/provider/qemu/swtpm.ts), so tests and VMs trust EK certificates made the same way.
 * A CA made in a temporary directory (no `dir`) is removed when the process exits, or by `removeSwtpmCa`.
 */
export async function createSwtpmCa(dir?: string): Promise<SwtpmCa> {
  const caDir = dir === undefined ? await makeTempDir('sextant-swtpm-ca-') : resolve(dir);
  const { rootPem, issuerPem } = await ensureLocalCa(caDir);
  return { dir: caDir, rootPem, issuerPem };
}

/** Removes a CA made by `createSwtpmCa()` (also done at process exit for temporary ones). */
export function removeSwtpmCa(ca: SwtpmCa): void {
  forgetTempDir(ca.dir);
}

async function manufacture(stateDir: string, ca: SwtpmCa): Promise<void> {
  await manufactureTpm(stateDir, ca.dir);
}

function isManufactured(stateDir: string): boolean {
  return existsSync(join(stateDir, 'tpm2-00.permall'));
}

// swtpm runs under a small sh supervisor that kills it as soon as our end of its stdin closes — which the kernel
// does for us if this process dies by SIGKILL, where no exit hook runs. The supervisor prints swtpm's pid first.
const SUPERVISOR = [
  'exec 3<&0',
  'swtpm "$@" 3<&- </dev/null &',
  'p=$!',
  'echo "$p"',
  '( read _ <&3; kill "$p" 2>/dev/null ) &',
  'w=$!',
  'exec 3<&-',
  'wait "$p"; rc=$?',
  'kill "$w" 2>/dev/null',
  'exit "$rc"',
].join('\n');

interface Running {
  child: ChildProcess;
  pid: number;
  exited: Promise<number | null>;
}

async function canConnect(port: number): Promise<boolean> {
  return await new Promise((res) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      res(true);
    });
    socket.once('error', () => res(false));
  });
}

class PortInUse extends Error {}

/** swtpm's arguments for a TPM 2.0 kept in `stateDir`, on 127.0.0.1 (data and control port), started at once. */
export function swtpmSocketArgs(stateDir: string, port = 2321, ctrlPort = 2322): string[] {
  return [
    'socket',
    '--tpm2',
    '--tpmstate',
    `dir=${stateDir}`,
    '--server',
    `type=tcp,port=${port},bindaddr=127.0.0.1`,
    '--ctrl',
    `type=tcp,port=${ctrlPort},bindaddr=127.0.0.1`,
    '--flags',
    'not-need-init,startup-clear',
  ];
}

async function launch(stateDir: string, port: number, ctrlPort: number, logFile: string): Promise<Running> {
  const args = [...swtpmSocketArgs(stateDir, port, ctrlPort), '--log', `file=${logFile},level=1`];
  const child = spawn('sh', ['-c', SUPERVISOR, 'sh', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });
  const pid = await new Promise<number>((res, reject) => {
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) res(Number(out.slice(0, nl)));
    });
    child.once('error', reject);
    void exited.then(() => reject(new Error(`swtpm supervisor exited early: ${stderr}`)));
  });
  livePids.add(pid);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) {
      livePids.delete(pid);
      const log = await readFile(logFile, 'utf8').catch(() => '');
      const text = `${stderr}${log}`;
      if (/address already in use|EADDRINUSE|could not bind/i.test(text)) throw new PortInUse(text);
      throw new Error(
        `swtpm exited with code ${exitCode} before listening on 127.0.0.1:${port}: ${text.trim()}`,
      );
    }
    if ((await canConnect(port)) && (await canConnect(ctrlPort))) {
      // A forgotten swtpm must not keep the test process alive: the exit hook (or the supervisor) ends it.
      setRef(child, false);
      return { child, pid, exited };
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await terminate({ child, pid, exited });
  throw new Error(`swtpm did not listen on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms: ${stderr}`);
}

function setRef(child: ChildProcess, ref: boolean): void {
  if (ref) child.ref();
  else child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    const s = stream as { ref?: () => void; unref?: () => void } | null;
    if (ref) s?.ref?.();
    else s?.unref?.();
  }
}

async function terminate(running: Running): Promise<void> {
  if (running.child.exitCode === null && running.child.signalCode === null) {
    setRef(running.child, true);
    running.child.stdin?.end(); // the supervisor sends swtpm SIGTERM, which saves state and exits
    const timer = setTimeout(() => {
      try {
        process.kill(running.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 3000);
    await running.exited;
    clearTimeout(timer);
  }
  livePids.delete(running.pid);
}

/**
 * Starts one swtpm in socket mode on loopback. A state directory is manufactured once (EK + certificates);
 * a given `stateDir` is kept on stop, a temporary one is removed. Pass `ca` to share one CA between many TPMs.
 */
export async function startSwtpm(opts: { stateDir?: string; ca?: SwtpmCa } = {}): Promise<Swtpm> {
  installExitHook();
  const ownedDirs: string[] = [];
  try {
    let stateDir: string;
    if (opts.stateDir === undefined) {
      stateDir = await makeTempDir('sextant-swtpm-');
      ownedDirs.push(stateDir);
    } else {
      stateDir = resolve(opts.stateDir);
      mkdirSync(stateDir, { recursive: true });
    }
    let ca = opts.ca;
    if (ca === undefined) {
      ca = await createSwtpmCa();
      ownedDirs.push(ca.dir);
    }
    if (!isManufactured(stateDir)) await manufacture(stateDir, ca);
    const logDir = opts.stateDir === undefined ? stateDir : await makeTempDir('sextant-swtpm-log-');
    if (opts.stateDir !== undefined) ownedDirs.push(logDir);
    const logFile = join(logDir, 'swtpm.log');

    let running: Running | undefined;
    let port = 0;
    let ctrlPort = 0;
    for (let attempt = 1; running === undefined; attempt++) {
      [port, ctrlPort] = await freePortPair();
      try {
        running = await launch(stateDir, port, ctrlPort, logFile);
      } catch (err) {
        if (!(err instanceof PortInUse) || attempt >= PORT_ATTEMPTS) throw err;
      }
    }

    let current: Running | undefined = running;
    const finalCa = ca;
    return {
      tcti: `swtpm:host=127.0.0.1,port=${port}`,
      port,
      ctrlPort,
      stateDir,
      ca: finalCa,
      async stop() {
        if (current) await terminate(current);
        current = undefined;
        for (const dir of ownedDirs) forgetTempDir(dir);
      },
      async restart() {
        if (current) await terminate(current);
        current = undefined;
        // Same ports, so the TCTI string handed out stays valid; a port grabbed meanwhile is retried briefly.
        for (let attempt = 1; current === undefined; attempt++) {
          try {
            current = await launch(stateDir, port, ctrlPort, logFile);
          } catch (err) {
            if (!(err instanceof PortInUse) || attempt >= PORT_ATTEMPTS) throw err;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      },
    };
  } catch (err) {
    for (const dir of ownedDirs) forgetTempDir(dir);
    throw err;
  }
}
