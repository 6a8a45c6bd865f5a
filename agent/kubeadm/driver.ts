import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { writeFileAtomic } from '../../common/atomic-file.js';
import type { Logger } from '../log/index.js';
import { diesWithAgent } from './child-guard.js';
import { redactSecrets } from './redact.js';

/** What the agent needs from kubeadm, narrow enough for tests to replace. */
export interface Kubeadm {
  /** `kubeadm init --config F [--upload-certs]`. */
  init(configYaml: string, opts?: { uploadCerts?: boolean }): Promise<void>;
  /** `kubeadm join --config F`. */
  join(configYaml: string): Promise<void>;
  /** `kubeadm reset -f`. */
  reset(): Promise<void>;
  /** The admin kubeconfig init wrote (<rootfs>/etc/kubernetes/admin.conf). */
  adminKubeconfig(): Promise<Buffer>;
}

export interface KubeadmOptions {
  binary: string;
  /** kubeadm's --rootfs: every absolute path kubeadm uses lives under it. */
  rootfs?: string;
  log: Logger;
  /** Per command. Default KUBEADM_COMMAND_TIMEOUT_MS, which the agent config's default is too. */
  timeoutMs?: number;
  /** Added to the agent's environment. */
  env?: NodeJS.ProcessEnv;
}

export class KubeadmError extends Error {
  override name = 'KubeadmError';
  /** The phase kubeadm reported ("error execution phase X"), if any. */
  phase?: string;
  exitCode?: number;
  timedOut = false;
  /** The last output lines, secrets redacted. */
  outputTail: string[];

  constructor(
    message: string,
    fields: { phase?: string; exitCode?: number; timedOut?: boolean; outputTail: string[] },
  ) {
    super(message);
    this.phase = fields.phase;
    this.exitCode = fields.exitCode;
    this.timedOut = fields.timedOut ?? false;
    this.outputTail = fields.outputTail;
  }
}

/**
 * A backstop above kubeadm's own waits (tuning.ts KUBEADM_TIMEOUTS: up to 15 min for the control plane, 10 for the
 * kubelet), which name the phase that hung; this one only catches a kubeadm that hangs outside them. Ten minutes
 * (the old value) cut a real init under TCG short.
 */
export const KUBEADM_COMMAND_TIMEOUT_MS = 30 * 60_000;
const TAIL_LINES = 40;

/** "error execution phase control-plane/apiserver: …" → "control-plane/apiserver" (the last one wins). */
export function parseFailedPhase(lines: readonly string[]): string | undefined {
  let phase: string | undefined;
  for (const line of lines) {
    const m = /error execution phase ([^\s:]+)/.exec(line);
    if (m) phase = m[1];
  }
  return phase;
}

export function createKubeadm(opts: KubeadmOptions): Kubeadm {
  const timeoutMs = opts.timeoutMs ?? KUBEADM_COMMAND_TIMEOUT_MS;
  const rootfsArgs = opts.rootfs ? ['--rootfs', opts.rootfs] : [];

  async function run(command: string, args: string[]): Promise<string> {
    const log = opts.log.child({ component: 'kubeadm', command });
    const tail: string[] = [];
    const keep = (line: string) => {
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
    };
    const stream = (name: 'stdout' | 'stderr') =>
      function* (line: unknown) {
        const safe = redactSecrets(String(line));
        if (safe.trim() !== '') {
          keep(safe);
          if (name === 'stdout') log.info(safe, { stream: name });
          else log.warn(safe, { stream: name });
        }
        yield line;
      };
    log.info('running kubeadm');
    const started = Date.now();
    const command_ = diesWithAgent(opts.binary, [...args, ...rootfsArgs]);
    const result = await execa(command_.file, command_.args, {
      env: opts.env,
      stdin: 'ignore',
      stdout: [stream('stdout')],
      stderr: [stream('stderr')],
      timeout: timeoutMs,
      forceKillAfterDelay: 2_000,
      reject: false,
    });
    const durationMs = Date.now() - started;
    if (result.timedOut) {
      throw new KubeadmError(`kubeadm ${command} timed out after ${timeoutMs} ms`, {
        phase: parseFailedPhase(tail),
        timedOut: true,
        outputTail: [...tail],
      });
    }
    if (result.failed) {
      const phase = parseFailedPhase(tail);
      const exitCode = result.exitCode;
      const cause =
        result.exitCode === undefined
          ? redactSecrets(result.shortMessage ?? 'did not run')
          : summarizeFailure(tail);
      const where = phase ? ` at phase ${phase}` : '';
      const how = exitCode === undefined ? '' : ` (exit ${exitCode})`;
      log.error('kubeadm failed', { phase, exitCode, durationMs });
      throw new KubeadmError(`kubeadm ${command} failed${where}${how}: ${cause}`, {
        phase,
        exitCode,
        outputTail: [...tail],
      });
    }
    log.info('kubeadm done', { durationMs });
    return String(result.stdout ?? '');
  }

  /** Real kubeadm chroots into --rootfs before reading --config, so the file goes inside the rootfs. */
  async function withConfigFile<T>(yaml: string, fn: (pathForKubeadm: string) => Promise<T>): Promise<T> {
    let hostDir: string;
    let insideDir: string;
    if (opts.rootfs) {
      const base = join(opts.rootfs, 'tmp');
      await mkdir(base, { recursive: true });
      hostDir = await mkdtemp(join(base, 'sextant-kubeadm-'));
      insideDir = `/tmp/${hostDir.slice(base.length + 1)}`;
    } else {
      hostDir = await mkdtemp(join(tmpdir(), 'sextant-kubeadm-'));
      insideDir = hostDir;
    }
    try {
      // The config can hold a bootstrap token and the certificate key.
      await writeFileAtomic(join(hostDir, 'config.yaml'), yaml, { mode: 0o600 });
      return await fn(`${insideDir}/config.yaml`);
    } finally {
      await rm(hostDir, { recursive: true, force: true });
    }
  }

  return {
    async init(configYaml, initOpts) {
      await withConfigFile(configYaml, (f) =>
        run('init', ['init', '--config', f, ...(initOpts?.uploadCerts ? ['--upload-certs'] : [])]),
      );
    },

    async join(configYaml) {
      await withConfigFile(configYaml, (f) => run('join', ['join', '--config', f]));
    },

    async reset() {
      await run('reset', ['reset', '-f']);
    },

    async adminKubeconfig() {
      const path = join(opts.rootfs ?? '/', 'etc/kubernetes/admin.conf');
      try {
        return await readFile(path);
      } catch (err) {
        throw new Error(`reading admin kubeconfig ${path}: ${(err as Error).message}`, { cause: err });
      }
    },
  };
}

const STACK_HINT = /^To see the stack trace of this error/;

/** The phase error and the lines that explain it (kubeadm's "[ERROR …]" list), without the stack-trace hint. */
export function summarizeFailure(tail: readonly string[]): string {
  const start = tail.findLastIndex((l) => /error execution phase /.test(l));
  const lines = start >= 0 ? tail.slice(start, start + 4) : tail.slice(-3);
  const text = lines
    .filter((l) => l.trim() !== '' && !STACK_HINT.test(l))
    .map((l) => l.trim())
    .join(' ');
  return text || 'no output';
}
