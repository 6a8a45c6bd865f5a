// sextant mini up / mini down: a real Kubernetes cluster in local QEMU VMs in one command. Each phase is the
// operator's own command (release build, config generate --release, create, init), skipped when the workspace
// shows it done, so a second `mini up` after an interruption resumes where the first stopped.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { loadConfig, saveConfig } from '../config/file.js';
import { isOurProcess, readPid } from '../provider/qemu/exec.js';
import { providerDir } from '../provider/qemu/nodes.js';
import { buildRelease } from '../release/build.js';
import { RELEASE_COMPONENTS_DIR } from '../release/release.js';
import { ADMIN_CONF_FILE } from '../workspace/paths.js';
import { isInitialized } from '../workspace/workspace.js';
import type { Backends } from './backends.js';
import { defineCommand, kmsOption, parsePositiveSeconds } from './command.js';
import { configGenerate } from './config-generate.js';
import { type CommandContext, UsageError } from './context.js';
import { create } from './create.js';

const UP = 'mini up';
const DOWN = 'mini down';

export interface MiniUpOptions {
  controlPlanes: number;
  workers: number;
  /** MiB per VM; default the release's reference shape (its measurements were taken with it). */
  memoryMiB?: number;
  /** A release directory to use instead of building (or finding cached) the one of this checkout. */
  release?: string;
  /** Extra image archives (docker/OCI) to preload on every node: a local cluster has no registry. */
  preloadImages: string[];
  /** Bound on waiting for every node to be Ready after init, in seconds. */
  readyTimeoutSeconds: number;
  /** Where the master secret lives (cli/kms/uri.ts), as `config generate --kms`; default a workspace file. */
  kms?: string;
}

interface NodeList {
  items: { metadata: { name: string }; status: { conditions?: { type: string; status: string }[] } }[];
}

/** What mini up calls besides the commands' own backends; tests swap these. */
export interface MiniDeps {
  buildRelease: typeof buildRelease;
  /** `kubectl get nodes -o json` with the workspace's admin kubeconfig. */
  getNodes(kubectl: string, kubeconfig: string): Promise<NodeList>;
  sleep(ms: number): Promise<void>;
}

const liveDeps: MiniDeps = {
  buildRelease,
  getNodes: (kubectl, kubeconfig) =>
    new Promise((resolveList, reject) => {
      execFile(
        kubectl,
        ['--kubeconfig', kubeconfig, '--request-timeout=20s', 'get', 'nodes', '-o', 'json'],
        { maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => {
          if (err) reject(new Error((stderr || err.message).trim().split('\n').pop()));
          else resolveList(JSON.parse(stdout) as NodeList);
        },
      );
    }),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** Phase lines with their elapsed time; on a terminal a spinner line under them, plain lines otherwise. */
class Phases {
  current = '';
  #start = Date.now();
  #phaseStart = Date.now();
  #timer: NodeJS.Timeout | undefined;
  readonly #tty: boolean;
  readonly times: { phase: string; seconds: number; skipped: boolean }[] = [];

  constructor(private readonly ctx: CommandContext) {
    this.#tty = (ctx.stderr as { isTTY?: boolean }).isTTY === true;
  }

  /** A context whose output first clears the spinner line, so progress of the phase's command stays readable. */
  wrap(): CommandContext {
    const clear = () => {
      if (this.#tty) this.ctx.stderr.write('\r\x1b[K');
    };
    return {
      ...this.ctx,
      stderr: {
        write: (s: string) => {
          clear();
          return this.ctx.stderr.write(s);
        },
      },
      progress: (m) => {
        clear();
        this.ctx.progress(`  ${m}`);
      },
    };
  }

  begin(name: string, why: string): void {
    this.current = name;
    this.#phaseStart = Date.now();
    this.ctx.progress(`${name}: ${why}`);
    if (this.#tty) {
      let i = 0;
      this.#timer = setInterval(() => {
        const s = ((Date.now() - this.#phaseStart) / 1000).toFixed(0);
        this.ctx.stderr.write(`\r\x1b[K${SPINNER[i++ % SPINNER.length]} ${name} ${s} s`);
      }, 250);
      this.#timer.unref();
    }
  }

  end(note = ''): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#tty) this.ctx.stderr.write('\r\x1b[K');
    const seconds = (Date.now() - this.#phaseStart) / 1000;
    this.times.push({ phase: this.current, seconds, skipped: false });
    this.ctx.progress(`${this.current}: done in ${seconds.toFixed(1)} s${note ? ` (${note})` : ''}`);
    this.current = '';
  }

  skip(name: string, why: string): void {
    this.times.push({ phase: name, seconds: 0, skipped: true });
    this.ctx.progress(`${name}: ${why}`);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#tty) this.ctx.stderr.write('\r\x1b[K');
  }

  total(): number {
    return (Date.now() - this.#start) / 1000;
  }
}

/** Whether every VM the workspace's provider started is still running. */
export function vmsAlive(workspace: string): { total: number; alive: number } {
  const dir = providerDir(workspace);
  let total = 0;
  let alive = 0;
  for (const node of existsSync(dir) ? readdirSyncSafe(dir) : []) {
    const pidFile = join(dir, node, 'qemu.pid');
    if (!existsSync(pidFile)) continue;
    total++;
    const pid = readPid(pidFile);
    if (pid !== undefined && isOurProcess(pid, dir)) alive++;
  }
  return { total, alive };
}

function readdirSyncSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** What the workspace holds, in words: what Ctrl-C and a failure report. */
async function describeState(workspace: string): Promise<string> {
  const vms = vmsAlive(workspace);
  const initialized = await isInitialized(workspace);
  if (vms.total > 0) {
    return `${vms.alive} of ${vms.total} VM(s) running, the cluster is ${initialized ? 'initialized (admin kubeconfig written)' : 'not initialized'}`;
  }
  if (initialized) return 'the cluster is initialized (admin kubeconfig written), no VM running';
  if (existsSync(join(workspace, 'sextant-conf.yaml'))) return 'configured, no VM started';
  return 'nothing created in the workspace yet';
}

const readyNames = (list: NodeList) =>
  list.items
    .filter((n) => n.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
    .map((n) => n.metadata.name);

export async function miniUp(
  ctx: CommandContext,
  options: MiniUpOptions,
  backends: Backends,
  deps: MiniDeps = liveDeps,
): Promise<number> {
  const phases = new Phases(ctx);
  const inner = phases.wrap();
  const ws = ctx.workspace;
  const onSigint = () => {
    void describeState(ws).then((state) => {
      phases.stop();
      ctx.stderr.write(
        `\ninterrupted during ${phases.current || 'mini up'}: ${state}.\n` +
          'Run "sextant mini up" again to resume, or "sextant mini down" to remove everything.\n',
      );
      // init handles its own Ctrl-C (it may have a request in flight) and returns; the other phases stop here
      if (phases.current !== 'init') process.exit(130);
    });
  };
  process.on('SIGINT', onSigint);
  try {
    return await up(ctx, inner, phases, options, backends, deps);
  } catch (err) {
    phases.stop();
    const state = await describeState(ws);
    throw new Error(
      `${phases.current || 'mini up'}: ${(err as Error).message}\nstate: ${state}. Fix the cause and run "sextant mini up" again to resume, or "sextant mini down".`,
    );
  } finally {
    process.off('SIGINT', onSigint);
    phases.stop();
  }
}

async function up(
  ctx: CommandContext,
  inner: CommandContext,
  phases: Phases,
  options: MiniUpOptions,
  backends: Backends,
  deps: MiniDeps,
): Promise<number> {
  const ws = ctx.workspace;
  const configured = existsSync(join(ws, 'sextant-conf.yaml'));

  // 1. release: Kubernetes, its images, the node image and its signed measurements (each cached by input hash)
  let release = options.release !== undefined ? resolve(ws, options.release) : undefined;
  if (configured) {
    phases.skip('release', 'the workspace is configured already (resuming); its release is used');
  } else if (release !== undefined) {
    phases.skip('release', `using ${release}`);
  } else {
    phases.begin(
      'release',
      'building or finding cached: Kubernetes from its Go modules (cold 10-20 min), the node image (cold ~3 min), its measurements (a reference boot, ~2 min)',
    );
    release = await deps.buildRelease({
      onLine: (l) => inner.progress(l.replace(/^\d\d:\d\d:\d\d /, '')),
      env: {
        ...ctx.env,
        ...(options.preloadImages.length > 0
          ? { SEXTANT_RELEASE_EXTRA_IMAGES: options.preloadImages.map((f) => resolve(ws, f)).join(' ') }
          : {}),
      },
    });
    phases.end(release);
  }

  // 2. config: generated from the release, then the sizes asked for
  if (configured) {
    phases.skip('config', 'sextant-conf.yaml exists: kept');
  } else {
    phases.begin('config', `sextant config generate qemu --release${options.kms ? ' --kms' : ''}`);
    const code = await configGenerate(inner, {
      provider: 'qemu',
      release: release as string,
      force: false,
      ...(options.kms !== undefined ? { kms: options.kms } : {}),
    });
    if (code !== 0) return code;
    const config = await loadConfig(ws);
    config.nodes = { controlPlanes: options.controlPlanes, workers: options.workers };
    if (options.memoryMiB !== undefined) config.provider.qemu.memoryMiB = options.memoryMiB;
    await saveConfig(ws, config);
    phases.end(`${options.controlPlanes} control plane(s), ${options.workers} worker(s)`);
  }
  const config = await loadConfig(ws);
  const releaseDir = config.provider.qemu.release;
  if (releaseDir === undefined) {
    throw new Error(
      'sextant-conf.yaml names no provider.qemu.release: this workspace was not made by mini up (use create/init, or a new directory)',
    );
  }
  const wanted = config.nodes.controlPlanes + config.nodes.workers;

  // 3. create: the VMs (OVMF measured boot, one swtpm each) and the release's component server
  const vms = vmsAlive(ws);
  phases.current = 'create';
  if (vms.total > 0 && vms.alive === vms.total) {
    phases.skip('create', `${vms.alive} VM(s) running already`);
  } else if (vms.total > 0) {
    throw new Error(
      `${vms.total - vms.alive} of ${vms.total} VM(s) of this workspace are gone (host restarted, or killed): run "sextant mini down" and "sextant mini up" again`,
    );
  } else {
    phases.begin(
      'create',
      `booting ${wanted} VM(s) under TCG (no KVM here: firmware, kernel and agent start take about 1-2 min)`,
    );
    const code = await create(inner, backends);
    if (code !== 0) return code;
    phases.end();
  }

  // 4. init: attest the first control plane, send the init request; the node runs kubeadm init
  if (await isInitialized(ws)) {
    phases.skip('init', 'the cluster is initialized already');
  } else {
    phases.begin(
      'init',
      'attesting the first control plane, then kubeadm init on it (installs the components, imports the images; 2-10 min under TCG)',
    );
    const code = await backends.runInit(inner, { force: false, timeoutSeconds: 3600 });
    if (code !== 0) {
      phases.stop();
      ctx.stderr.write(
        `init did not finish (exit ${code}); state: ${await describeState(ws)}. Run "sextant mini up" again to resume.\n`,
      );
      return code;
    }
    phases.end();
  }

  // 5. every node joined and Ready
  const kubectl = join(releaseDir, RELEASE_COMPONENTS_DIR, 'kubectl');
  const kubeconfig = join(ws, ADMIN_CONF_FILE);
  phases.begin(
    'ready',
    `waiting for ${wanted} node(s) to join through the attested JoinService and turn Ready (kubelet, CNI)`,
  );
  const deadline = Date.now() + options.readyTimeoutSeconds * 1000;
  const seen = new Set<string>();
  let last = '';
  for (;;) {
    try {
      const list = await deps.getNodes(kubectl, kubeconfig);
      for (const n of readyNames(list)) {
        if (!seen.has(n)) inner.progress(`${n} Ready`);
        seen.add(n);
      }
      if (seen.size >= wanted) break;
      last = `${seen.size} of ${wanted} Ready (${list.items.length} registered)`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) {
      throw new Error(`not every node Ready within ${options.readyTimeoutSeconds} s (last: ${last})`);
    }
    await deps.sleep(5000);
  }
  phases.end(`${seen.size} node(s)`);

  const breakdown = phases.times
    .map((t) => `${t.phase} ${t.skipped ? 'skipped' : `${t.seconds.toFixed(0)} s`}`)
    .join(', ');
  ctx.stdout.write(
    [
      `cluster "${config.name}" is up: ${seen.size} node(s) Ready in ${phases.total().toFixed(0)} s (${breakdown})`,
      '',
      `  kubectl --kubeconfig ${kubeconfig} get nodes`,
      '',
      'next:',
      `  export KUBECONFIG=${kubeconfig}     # then plain kubectl works (kubectl ${config.kubernetes.version} is ${kubectl})`,
      `  sextant verify --endpoint <node>:${config.initPort}   # attest a node again`,
      "  sextant mini down                   # stop every VM and remove this workspace's files",
      'Images come from the nodes themselves (no registry): use imagePullPolicy: Never or IfNotPresent.',
      '',
    ].join('\n'),
  );
  return 0;
}

export interface MiniDownOptions {
  yes: boolean;
}

/** The files mini up left in the workspace: sextant-* (config, secrets, state, kubeconfig, measurements) and qemu/. */
async function workspaceFiles(ws: string): Promise<string[]> {
  const names = await readdir(ws).catch(() => [] as string[]);
  return names.filter(
    (n) => /^\.?sextant[-.]/.test(n) || n === 'qemu' || /^\.sextant-.*\.(tmp|new)$/.test(n),
  );
}

export async function miniDown(
  ctx: CommandContext,
  options: MiniDownOptions,
  backends: Backends,
  confirm: (question: string) => Promise<boolean> = askOnTerminal,
): Promise<number> {
  const ws = ctx.workspace;
  const files = await workspaceFiles(ws);
  if (!files.includes('sextant-conf.yaml') && !files.includes('qemu')) {
    ctx.stderr.write(
      `sextant ${DOWN}: ${ws} is not a Sextant workspace (no sextant-conf.yaml, no qemu/): nothing removed\n`,
    );
    return 1;
  }
  const vms = vmsAlive(ws);
  if (!options.yes) {
    const ok = await confirm(
      `remove the cluster in ${ws}: stop ${vms.alive} VM(s) and delete ${files.join(', ')} (the master secret too)? [y/N] `,
    );
    if (!ok) {
      ctx.stderr.write('nothing removed\n');
      return 1;
    }
  }
  const provider = await backends.provider('qemu');
  await provider.terminateNodes(ws, (m) => ctx.progress(m));
  for (const f of files) await rm(join(ws, f), { recursive: true, force: true });
  ctx.stderr.write(
    `stopped ${vms.alive} VM(s) with their swtpm and the component server; removed ${files.join(', ')}\n`,
  );
  return 0;
}

/** Asks on the terminal; without one, a usage error: destroying needs a person's yes or --yes. */
export async function askOnTerminal(question: string, command = DOWN): Promise<boolean> {
  if (!process.stdin.isTTY) {
    throw new UsageError('stdin is not a terminal: pass --yes to go on without asking', command);
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

function count(value: string | boolean | undefined, flag: string, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > 99) {
    throw new UsageError(
      `${flag}: expected a whole number from ${min} to 99, got ${JSON.stringify(value)}`,
      UP,
    );
  }
  return Number(value);
}

export const miniUpCommand = defineCommand<MiniUpOptions>({
  path: ['mini', 'up'],
  summary: 'a real Kubernetes cluster in local QEMU VMs, in one command',
  usage:
    'sextant mini up [--control-planes N] [--workers N] [--memory MiB] [--release DIR] [--preload-image FILE] [--kms URI]',
  help: [
    'In the workspace (an empty directory), as root: builds or finds cached the release (Kubernetes from its Go',
    'modules, the node image and its signed measurements), writes sextant-conf.yaml from it, boots the VMs,',
    'initializes the cluster over attested TLS, waits until every node joined and is Ready, and prints the',
    'kubectl command. Run it again after an interruption: finished phases are skipped.',
    '',
    '  --control-planes N    control-plane nodes (default 1)',
    '  --workers N           worker nodes (default 1; each VM takes 2 vCPUs and 3 GiB)',
    "  --memory MiB          memory per VM (default 3072, the shape the release's measurements were taken with)",
    '  --release DIR         use this release directory (sextant release build) instead of building one',
    '  --preload-image FILE  an image archive (docker/OCI) every node imports; repeatable (no registry here)',
    '  --ready-timeout S     give up waiting for Ready nodes after S seconds (default 1800)',
    '  --kms URI             where the master secret lives, as config generate --kms (transit+https://…, pkcs11:…);',
    '                        its credential from the environment (BAO_TOKEN, SEXTANT_KMS_TOKEN_FILE, SEXTANT_PKCS11_PIN…)',
  ].join('\n'),
  options: {
    'control-planes': { type: 'string' },
    workers: { type: 'string' },
    memory: { type: 'string' },
    release: { type: 'string' },
    'preload-image': { type: 'string', multiple: true },
    'ready-timeout': { type: 'string' },
    kms: { type: 'string' },
  },
  maxPositionals: 0,
  parse: ({ values }) => {
    const out: MiniUpOptions = {
      controlPlanes: count(values['control-planes'], '--control-planes', 1, 1),
      workers: count(values.workers, '--workers', 0, 1),
      preloadImages: (values['preload-image'] as unknown as string[] | undefined) ?? [],
      readyTimeoutSeconds:
        typeof values['ready-timeout'] === 'string'
          ? parsePositiveSeconds(values['ready-timeout'], '--ready-timeout', UP)
          : 1800,
    };
    if (values.memory !== undefined) {
      const m = String(values.memory);
      if (!/^[0-9]+$/.test(m) || Number(m) < 1024) {
        throw new UsageError(`--memory: expected MiB, at least 1024, got ${JSON.stringify(m)}`, UP);
      }
      out.memoryMiB = Number(m);
    }
    if (typeof values.release === 'string') out.release = values.release;
    if (typeof values.kms === 'string') out.kms = kmsOption(values.kms, UP);
    return out;
  },
  run: (ctx, options, backends) => miniUp(ctx, options, backends),
});

export const miniDownCommand = defineCommand<MiniDownOptions>({
  path: ['mini', 'down'],
  summary: 'stop every VM mini up started and remove the workspace files',
  usage: 'sextant mini down [--yes]',
  help: [
    'Stops every VM, swtpm and the component server of the workspace, deletes its network namespace and removes',
    'qemu/ and the sextant-* files (config, secrets, state, kubeconfig). Asks first unless --yes.',
    '',
    '  --yes   do not ask',
  ].join('\n'),
  options: { yes: { type: 'boolean', short: 'y' } },
  maxPositionals: 0,
  parse: ({ values }) => ({ yes: values.yes === true }),
  run: (ctx, options, backends) => miniDown(ctx, options, backends),
});
