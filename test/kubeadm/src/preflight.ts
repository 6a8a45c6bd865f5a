// kubeadm's preflight checks that matter to Sextant's flow (cmd/kubeadm/app/preflight/checks.go, v1.34),
// with kubeadm's check names (what --ignore-preflight-errors and nodeRegistration.ignorePreflightErrors
// match, case-insensitively) and messages. Everything is read as kubeadm sees it after its chroot into
// --rootfs: /proc/sys/… and the kubelet on $PATH come from the node's root, not the test host's.
//
// Not modelled (the fast tiers run no container runtime or systemd): ContainerRuntime, SystemVerification,
// Swap, Service-Kubelet, Firewalld, HTTPProxy, Hostname, the conntrack/losetup/mount/cp path checks.
import { execFile } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, totalmem } from 'node:os';
import { sleep } from './client.js';
import type { Rootfs } from './paths.js';

export interface CheckResult {
  warnings?: string[];
  errors?: string[];
}

export interface Check {
  /** kubeadm's name for the check (Checker.Name()). */
  name: string;
  run(): Promise<CheckResult> | CheckResult;
}

/** The error runChecks throws; kubeadm prints the detail to stderr and fails with this message. */
export class PreflightError extends Error {
  constructor() {
    super('preflight checks failed');
  }
}

/** Path → check-name suffix, as kubeadm's strings.Replace(path, "/", "-", -1). */
const dashed = (path: string) => path.replace(/\//g, '-');

/** ControlPlaneNumCPU. */
export function numCpuCheck(required = 2, count: () => number = availableParallelism): Check {
  return {
    name: 'NumCPU',
    run: () => {
      const n = count();
      return n < required
        ? { errors: [`the number of available CPUs ${n} is less than the required ${required}`] }
        : {};
    },
  };
}

/** ControlPlaneMem (MiB). */
export function memCheck(requiredMiB = 1700, total: () => number = totalmem): Check {
  return {
    name: 'Mem',
    run: () => {
      const mib = Math.floor(total() / 1024 / 1024);
      return mib < requiredMiB
        ? { errors: [`the system RAM (${mib} MB) is less than the minimum ${requiredMiB} MB`] }
        : {};
    },
  };
}

export const minorOf = (v: string) => Number(/^v?\d+\.(\d+)/.exec(v)?.[1] ?? 0);

/** Warns about a control plane newer than kubeadm (an older one is refused earlier, at config load). */
export function kubernetesVersionCheck(kubernetesVersion: string, kubeadmVersion: string): Check {
  return {
    name: 'KubernetesVersion',
    run: () =>
      minorOf(kubernetesVersion) > minorOf(kubeadmVersion)
        ? {
            warnings: [
              `Kubernetes version is greater than kubeadm version. Please consider to upgrade kubeadm. Kubernetes version: ${kubernetesVersion.replace(/^v/, '')}. Kubeadm version: ${kubeadmVersion.replace(/^v/, '').replace(/\.\d+$/, '')}.x`,
            ],
          }
        : {},
  };
}

/**
 * PortOpenCheck: listens on the port on every address, as kubeadm's net.Listen("tcp", ":port"). A port
 * held by another process is tried three times over 200 ms, so two nodes' checks racing in one network
 * namespace (test files run concurrently) do not fail each other; a port really in use stays in use.
 */
export function portOpenCheck(port: number): Check {
  const tryListen = () =>
    new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen({ port, exclusive: true }, () => s.close(() => resolve(true)));
    });
  return {
    name: `Port-${port}`,
    run: async () => {
      for (let attempt = 0; attempt < 3; attempt++) {
        if (await tryListen()) return {};
        await sleep(100);
      }
      return { errors: [`Port ${port} is in use`] };
    },
  };
}

export function fileAvailableCheck(rootfs: Rootfs, path: string): Check {
  return {
    name: `FileAvailable-${dashed(path)}`,
    run: () => {
      try {
        statSync(rootfs.p(path));
        return { errors: [`${path} already exists`] };
      } catch {
        return {};
      }
    },
  };
}

export function dirAvailableCheck(rootfs: Rootfs, path: string): Check {
  return {
    name: `DirAvailable-${dashed(path)}`,
    run: () => {
      let entries: string[];
      try {
        entries = readdirSync(rootfs.p(path));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
        return { errors: [`unable to check if ${path} is empty: ${(e as Error).message}`] };
      }
      return entries.length > 0 ? { errors: [`${path} is not empty`] } : {};
    },
  };
}

/** FileContentCheck: the file's first bytes must be `content` (ip_forward = "1"). */
export function fileContentCheck(rootfs: Rootfs, path: string, content: string): Check {
  return {
    name: `FileContent-${dashed(path)}`,
    run: () => {
      let got: string;
      try {
        got = readFileSync(rootfs.p(path), 'latin1');
      } catch {
        return { errors: [`${path} does not exist`] };
      }
      return got.slice(0, content.length) === content
        ? {}
        : { errors: [`${path} contents are not set to ${content}`] };
    },
  };
}

export const IPV4_FORWARD = '/proc/sys/net/ipv4/ip_forward';
export const IPV6_FORWARD = '/proc/sys/net/ipv6/conf/default/forwarding';

/** Looks `name` up on $PATH inside the rootfs, as exec.LookPath does after kubeadm's chroot. */
function lookPath(rootfs: Rootfs, name: string): string | undefined {
  const dirs = (process.env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(
    ':',
  );
  for (const dir of dirs) {
    if (!dir.startsWith('/')) continue;
    const candidate = rootfs.p(`${dir}/${name}`);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; next directory
    }
  }
  return undefined;
}

const KUBELET_VERSION_RE = /^\s*Kubernetes v((0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)([-\w.+]*)?)\s*$/;

/**
 * KubeletVersionCheck: runs `kubelet --version`; the kubelet must be at least three minors older than
 * kubeadm at most (MinimumKubeletVersion) and, when the control-plane version is known (init), not newer.
 */
export function kubeletVersionCheck(
  rootfs: Rootfs,
  kubeadmVersion: string,
  kubernetesVersion?: string,
): Check {
  return {
    name: 'KubeletVersion',
    run: async () => {
      const fail = (why: string) => ({ errors: [`couldn't get kubelet version: ${why}`] });
      const bin = lookPath(rootfs, 'kubelet');
      if (!bin)
        return fail(
          `cannot execute 'kubelet --version': exec: "kubelet": executable file not found in $PATH`,
        );
      const out = await new Promise<{ err?: Error; stdout: string }>((resolve) =>
        execFile(bin, ['--version'], { timeout: 10_000 }, (err, stdout) =>
          resolve({ err: err ?? undefined, stdout: String(stdout) }),
        ),
      );
      if (out.err) return fail(`cannot execute 'kubelet --version': ${out.err.message.split('\n')[0]}`);
      const m = KUBELET_VERSION_RE.exec(out.stdout.trim());
      if (!m) return fail(`Unable to parse output from Kubelet: ${JSON.stringify(out.stdout.trim())}`);
      const kubelet = m[1]!;
      const kubeletMinor = Number(m[3]);
      const minMinor = minorOf(kubeadmVersion) - 3;
      if (Number(m[2]) === 1 && kubeletMinor < minMinor) {
        return {
          errors: [`Kubelet version "${kubelet}" is lower than kubeadm can support. Please upgrade kubelet`],
        };
      }
      if (kubernetesVersion && kubeletMinor > minorOf(kubernetesVersion)) {
        return {
          errors: [
            `the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: "${kubelet}" Control plane version: "${kubernetesVersion.replace(/^v/, '')}"`,
          ],
        };
      }
      return {};
    },
  };
}

/**
 * RunChecks: each check's warnings, and the errors of checks named in `ignore` (or "all"), go to stderr
 * as "\t[WARNING Name]: …"; the other errors are listed under "[preflight] Some fatal errors occurred"
 * and fail the phase.
 */
export async function runChecks(
  checks: Check[],
  ignore: Set<string>,
  stderr: (text: string) => void = (t) => process.stderr.write(t),
): Promise<void> {
  let fatal = '';
  for (const c of checks) {
    const r = await c.run();
    const warnings = [...(r.warnings ?? [])];
    let errors = r.errors ?? [];
    if (ignore.has('all') || ignore.has(c.name.toLowerCase())) {
      warnings.push(...errors);
      errors = [];
    }
    for (const w of warnings) stderr(`\t[WARNING ${c.name}]: ${w}\n`);
    for (const e of errors) fatal += `\t[ERROR ${c.name}]: ${e}\n`;
  }
  if (fatal) {
    stderr(
      `[preflight] Some fatal errors occurred:\n${fatal}[preflight] If you know what you are doing, you can make a check non-fatal with \`--ignore-preflight-errors=...\`\n`,
    );
    throw new PreflightError();
  }
}
