// One QEMU VM under TCG (KVM does not work on these machines), daemonized, with its serial console in a file,
// a QMP socket for a clean power-off, and an swtpm attached through its unix control socket.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { resolve } from 'node:path';
import { run } from './exec.js';

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

export type BootMode =
  /** q35 + OVMF + GPT disk with the UKI: measured boot (firmware PCRs 0-7, initrd 9, UKI 11). */
  | { kind: 'ovmf'; disk: string; diskFormat: 'raw' | 'qcow2'; varsFile: string; snapshot?: boolean }
  /** SeaBIOS + direct kernel boot + ext4 root: ~2x faster, no UEFI measurements. */
  | { kind: 'direct'; kernel: string; initrd: string; cmdline: string; root: string; snapshot?: boolean };

export interface VmOptions {
  name: string;
  boot: BootMode;
  cpus: number;
  memoryMiB: number;
  consoleLog: string;
  pidFile: string;
  qmpSocket: string;
  /** swtpm control socket; no TPM when absent. */
  tpmSocket?: string;
  /** fw_cfg items: name (e.g. opt/sextant/metadata) -> host file. */
  fwCfg?: Record<string, string>;
  /** tap device (must exist in the namespace QEMU runs in) and MAC, or QEMU user networking (DHCP, no host access). */
  nic?: { tap: string; mac: string } | { user: true };
  /** Run QEMU inside this network namespace (via `ip netns exec`). */
  netns?: string;
}

export function qemuArgs(o: VmOptions): string[] {
  const args = ['-name', `sextant-${o.name}`, '-accel', 'tcg,thread=multi', '-cpu', 'max'];
  args.push(
    '-smp',
    String(o.cpus),
    '-m',
    String(o.memoryMiB),
    '-nodefaults',
    '-display',
    'none',
    '-no-reboot',
  );
  args.push('-chardev', `file,id=ser0,path=${resolve(o.consoleLog)}`, '-serial', 'chardev:ser0');
  args.push('-qmp', `unix:${o.qmpSocket},server=on,wait=off`);
  args.push('-daemonize', '-pidfile', resolve(o.pidFile));
  const b = o.boot;
  if (b.kind === 'ovmf') {
    args.push('-machine', 'q35');
    args.push('-drive', `if=pflash,format=raw,unit=0,file=${OVMF_CODE},readonly=on`);
    args.push('-drive', `if=pflash,format=raw,unit=1,file=${resolve(b.varsFile)}`);
    args.push(
      '-drive',
      `file=${resolve(b.disk)},if=virtio,format=${b.diskFormat}${b.snapshot ? ',snapshot=on' : ''}`,
    );
  } else {
    args.push('-kernel', resolve(b.kernel), '-initrd', resolve(b.initrd), '-append', b.cmdline);
    args.push('-drive', `file=${resolve(b.root)},if=virtio,format=raw${b.snapshot ? ',snapshot=on' : ''}`);
  }
  if (o.tpmSocket) {
    args.push('-chardev', `socket,id=chrtpm,path=${o.tpmSocket}`);
    args.push('-tpmdev', 'emulator,id=tpm0,chardev=chrtpm', '-device', 'tpm-tis,tpmdev=tpm0');
  }
  for (const [name, file] of Object.entries(o.fwCfg ?? {}))
    args.push('-fw_cfg', `name=${name},file=${resolve(file)}`);
  if (o.nic) {
    if ('tap' in o.nic) args.push('-netdev', `tap,id=n0,ifname=${o.nic.tap},script=no,downscript=no`);
    else args.push('-netdev', 'user,id=n0,restrict=on');
    // No option ROM (iPXE): it would be measured into PCR 2 and slows OVMF down; OVMF's own virtio-net driver stays.
    args.push('-device', `virtio-net-pci,netdev=n0${'mac' in o.nic ? `,mac=${o.nic.mac}` : ''},romfile=`);
    // No PXE boot options: OVMF would put them (with the per-node MAC) into the measured Boot#### variables.
    args.push('-fw_cfg', 'name=opt/org.tianocore/IPv4PXESupport,string=n');
    args.push('-fw_cfg', 'name=opt/org.tianocore/IPv6PXESupport,string=n');
  }
  return args;
}

/** Starts the VM; returns once QEMU has daemonized (the guest is then booting). */
export async function startVm(o: VmOptions): Promise<void> {
  const args = qemuArgs(o);
  if (o.netns)
    await run(`start VM ${o.name}`, 'ip', ['netns', 'exec', o.netns, 'qemu-system-x86_64', ...args]);
  else await run(`start VM ${o.name}`, 'qemu-system-x86_64', args);
}

/** Asks the guest to power off over QMP (ACPI power button); resolves once the command was accepted. */
export async function powerDown(qmpSocket: string, timeoutMs = 5000): Promise<void> {
  await new Promise<void>((resolveDone, reject) => {
    const sock = createConnection(qmpSocket);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`QMP ${qmpSocket}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    let buf = '';
    let step = 0;
    sock.on('data', (d) => {
      buf += d.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
        const msg = JSON.parse(line) as { QMP?: unknown; return?: unknown; error?: { desc: string } };
        if (msg.error) {
          clearTimeout(timer);
          sock.destroy();
          reject(new Error(`QMP ${qmpSocket}: ${msg.error.desc}`));
          return;
        }
        if (msg.QMP && step === 0) {
          step = 1;
          sock.write('{"execute":"qmp_capabilities"}\n');
        } else if (msg.return !== undefined && step === 1) {
          step = 2;
          sock.write('{"execute":"system_powerdown"}\n');
        } else if (msg.return !== undefined && step === 2) {
          clearTimeout(timer);
          sock.end();
          resolveDone();
        }
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`QMP ${qmpSocket}: ${err.message}`));
    });
  });
}

export interface ConsoleMatch {
  line: string;
  /** Seconds since `since` (ms epoch) when the line was first seen (polling granularity 200 ms). */
  seconds: number;
}

/**
 * Waits until a line of the console log matches `pattern`. Fails early when `alive()` turns false (QEMU gone)
 * and at the timeout; the error names the node and points at the log.
 */
export async function waitForConsole(
  node: string,
  consoleLog: string,
  pattern: RegExp,
  timeoutMs: number,
  since: number,
  alive: () => boolean = () => true,
): Promise<ConsoleMatch> {
  let offset = 0;
  let partial = '';
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let size = 0;
    try {
      size = statSync(consoleLog).size;
    } catch {
      size = 0;
    }
    if (size > offset) {
      const fd = openSync(consoleLog, 'r');
      try {
        const buf = Buffer.alloc(size - offset);
        readSync(fd, buf, 0, buf.length, offset);
        offset = size;
        const lines = (partial + buf.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const raw of lines) {
          const line = raw.replace(/\r/g, '');
          if (pattern.test(line)) return { line, seconds: (Date.now() - since) / 1000 };
        }
      } finally {
        closeSync(fd);
      }
    }
    if (!alive()) throw new Error(`node ${node}: VM exited before ${pattern} appeared; see ${consoleLog}`);
    if (Date.now() > deadline) {
      throw new Error(
        `node ${node}: ${pattern} did not appear within ${timeoutMs / 1000} s; see ${consoleLog}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
