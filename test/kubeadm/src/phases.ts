import { appendFileSync } from 'node:fs';

/** An error kubeadm would print and exit 1 on. */
export class KubeadmError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** What `workflow.Runner` prints when a phase fails: "error execution phase <name>: <cause>". */
export class PhaseError extends KubeadmError {
  constructor(
    readonly phase: string,
    cause: string,
  ) {
    super(`error execution phase ${phase}: ${cause}`);
  }
}

/** Records this invocation for tests (KUBEADM_STANDIN_LOG). */
export function logInvocation(argv: string[]): void {
  const file = process.env.KUBEADM_STANDIN_LOG;
  if (!file) return;
  appendFileSync(file, `${JSON.stringify({ argv, pid: process.pid, time: new Date().toISOString() })}\n`);
}

/**
 * Entered before every phase and sub-phase. KUBEADM_STANDIN_FAIL_PHASE / KUBEADM_STANDIN_HANG_PHASE
 * name a phase ("certs") or a sub-phase ("certs/apiserver"); a top-level name matches its sub-phases' parent.
 */
export async function enterPhase(name: string): Promise<void> {
  const fail = process.env.KUBEADM_STANDIN_FAIL_PHASE;
  const hang = process.env.KUBEADM_STANDIN_HANG_PHASE;
  // "phase:ms": a slow phase, as a real kubeadm pulling images is (the fault tests interrupt an init in flight).
  const [slowPhase, slowMs] = (process.env.KUBEADM_STANDIN_DELAY_PHASE ?? '').split(':');
  if (slowPhase && slowPhase === name) {
    process.stderr.write(`[standin] spending ${slowMs} ms in phase ${name} (KUBEADM_STANDIN_DELAY_PHASE)\n`);
    await new Promise((r) => setTimeout(r, Number(slowMs)));
  }
  if (hang && hang === name) {
    process.stderr.write(`[standin] hanging in phase ${name} (KUBEADM_STANDIN_HANG_PHASE)\n`);
    await new Promise<never>(() => {
      setInterval(() => {}, 1 << 30);
    });
  }
  if (fail && fail === name) {
    throw new PhaseError(name, `injected failure (KUBEADM_STANDIN_FAIL_PHASE=${fail})`);
  }
}

/** Runs a phase body, wrapping plain errors in kubeadm's phase error format. */
export async function runPhase<T>(
  name: string,
  skip: Set<string>,
  body: () => Promise<T> | T,
): Promise<T | undefined> {
  const top = name.split('/')[0]!;
  if (skip.has(name) || skip.has(top) || skip.has('all')) return undefined;
  try {
    await enterPhase(name);
    return await body();
  } catch (err) {
    if (err instanceof PhaseError) throw err;
    const msg = err instanceof Error ? err.message : String(err);
    throw new PhaseError(name, msg);
  }
}

export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function warn(line: string): void {
  process.stderr.write(`W${stamp()} ${process.pid} standin] ${line}\n`);
}

export function verbose(level: number, wanted: number, line: string): void {
  if (level >= wanted) process.stderr.write(`I${stamp()} ${process.pid} standin] ${line}\n`);
}

function stamp(): string {
  const d = new Date();
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getMonth() + 1)}${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}000`;
}
