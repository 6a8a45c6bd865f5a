// Test harness: one QEMU VM (OVMF + UKI disk, or SeaBIOS direct kernel) with its own manufactured swtpm
// (EK certificate from a PRIVATE swtpm-localca CA in the VM's directory), console captured to a log file,
// markers awaited, and everything stopped again: no process and no temp dir outlives the test process.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isOurProcess, readPid, stopProcess } from '../../cli/provider/qemu/exec.js';
import { manufactureTpm, readLocalCa, startSwtpm } from '../../cli/provider/qemu/swtpm.js';
import {
  type ConsoleMatch,
  OVMF_VARS,
  powerDown,
  startVm,
  waitForConsole,
} from '../../cli/provider/qemu/vm.js';

export { READY_MARKER } from '../../cli/provider/qemu/nodes.js';

export interface BootOptions {
  name?: string;
  /** image/build/<hash> (scripts/image-build.sh prints it). */
  imageDir: string;
  /** 'ovmf' = measured boot from disk.img (~50 s to multi-user); 'direct' = SeaBIOS + kernel/initrd + the same disk (~25 s). */
  mode: 'ovmf' | 'direct';
  /** Where console.log and the VM's files go; default a temp dir removed by stop() unless keepDir. */
  dir?: string;
  keepDir?: boolean;
  cpus?: number;
  memoryMiB?: number;
  /** Extra fw_cfg items: name -> content (written to files). */
  fwCfg?: Record<string, string>;
  /** Kernel command line for 'direct' (default: the image's own). */
  cmdline?: string;
}

export interface BootedVm {
  name: string;
  dir: string;
  consoleLog: string;
  startedAt: number;
  /** Waits for a console line; seconds are counted from QEMU start. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<ConsoleMatch>;
  console(): string;
  /** ACPI power-off, waiting up to timeoutMs for QEMU to exit; then stop() (kills whatever is left). */
  powerOff(timeoutMs?: number): Promise<void>;
  /** Kills QEMU and swtpm, removes the directory unless keepDir. Idempotent. */
  stop(): Promise<void>;
}

const live = new Set<{ pids: () => number[] }>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const vm of live) {
      for (const pid of vm.pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  };
  process.once('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAll();
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

export async function bootVm(options: BootOptions): Promise<BootedVm> {
  hookExit();
  const name = options.name ?? 'vm';
  const dir = resolve(options.dir ?? mkdtempSync(join(tmpdir(), `sextant-qemu-${name}-`)));
  mkdirSync(dir, { recursive: true });
  const img = resolve(options.imageDir);
  const consoleLog = join(dir, 'console.log');
  const files = {
    qemuPid: join(dir, 'qemu.pid'),
    swtpmPid: join(dir, 'swtpm.pid'),
    tpmSocket: join(dir, 'swtpm.sock'),
    qmp: join(dir, 'qmp.sock'),
  };
  const pids = () =>
    [readPid(files.qemuPid), readPid(files.swtpmPid)].filter(
      (p): p is number => p !== undefined && isOurProcess(p, dir),
    );
  const entry = { pids };
  live.add(entry);

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const pid of pids()) await stopProcess(pid, dir, 3000);
    live.delete(entry);
    if (!options.keepDir) rmSync(dir, { recursive: true, force: true });
  };

  try {
    await manufactureTpm(join(dir, 'tpm'), join(dir, 'ca'), name);
    await startSwtpm(join(dir, 'tpm'), files.tpmSocket, files.swtpmPid, join(dir, 'swtpm.log'));
    const ca = await readLocalCa(join(dir, 'ca'));
    const fwCfg: Record<string, string> = {};
    const items = { 'opt/sextant/ek-ca': ca.rootPem + ca.issuerPem, ...options.fwCfg };
    for (const [item, content] of Object.entries(items)) {
      const file = join(dir, `fwcfg-${item.replace(/[^a-z0-9]+/gi, '_')}`);
      writeFileSync(file, content);
      fwCfg[item] = file;
    }
    const boot =
      options.mode === 'ovmf'
        ? (() => {
            copyFileSync(OVMF_VARS, join(dir, 'vars.fd'));
            return {
              kind: 'ovmf' as const,
              disk: join(img, 'disk.img'),
              diskFormat: 'raw' as const,
              varsFile: join(dir, 'vars.fd'),
              snapshot: true,
            };
          })()
        : {
            kind: 'direct' as const,
            kernel: join(img, 'vmlinuz'),
            initrd: join(img, 'initrd.img'),
            // the file is the UKI's .cmdline section as measured, NUL-terminated
            cmdline: options.cmdline ?? readFileSync(join(img, 'cmdline'), 'utf8').replace(/\0/g, '').trim(),
            root: join(img, 'disk.img'),
            snapshot: true,
          };
    const startedAt = Date.now();
    await startVm({
      name,
      boot,
      cpus: options.cpus ?? 2,
      memoryMiB: options.memoryMiB ?? 2048,
      consoleLog,
      pidFile: files.qemuPid,
      qmpSocket: files.qmp,
      tpmSocket: files.tpmSocket,
      fwCfg,
      nic: { user: true },
    });
    const qemuAlive = () => {
      const pid = readPid(files.qemuPid);
      return pid !== undefined && isOurProcess(pid, dir);
    };
    return {
      name,
      dir,
      consoleLog,
      startedAt,
      waitFor: (pattern, timeoutMs) =>
        waitForConsole(name, consoleLog, pattern, timeoutMs, startedAt, qemuAlive),
      console: () => {
        try {
          return readFileSync(consoleLog, 'utf8');
        } catch {
          return '';
        }
      },
      powerOff: async (timeoutMs = 60_000) => {
        if (qemuAlive()) {
          await powerDown(files.qmp).catch(() => undefined);
          const deadline = Date.now() + timeoutMs;
          while (qemuAlive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
        }
        await stop();
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw new Error(`VM ${name}: ${(err as Error).message} (console: ${consoleLog})`);
  }
}
