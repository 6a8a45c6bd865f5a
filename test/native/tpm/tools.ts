// tpm2-tools on the same swtpm, for cross-checking the binding; plus one swtpm per test.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import { createSwtpmCa, type Swtpm, type SwtpmCa, startSwtpm } from '../../harness/swtpm.js';

const execFileAsync = promisify(execFile);

let sharedCa: Promise<SwtpmCa> | undefined;

// node:test runs `after` hooks in registration order; TPM contexts must close before their swtpm stops.
const stacks = new WeakMap<TestContext, (() => unknown)[]>();

/** Registers `fn` to run when the test ends, last registered first. */
export function defer(t: TestContext, fn: () => unknown): void {
  let stack = stacks.get(t);
  if (!stack) {
    const fresh: (() => unknown)[] = [];
    stack = fresh;
    stacks.set(t, fresh);
    t.after(async () => {
      for (const f of fresh.reverse()) await f();
    });
  }
  stack.push(fn);
}

/** A fresh swtpm for one test (one CA per test file), stopped when the test ends. */
export async function freshSwtpm(t: TestContext): Promise<Swtpm> {
  sharedCa ??= createSwtpmCa();
  const swtpm = await startSwtpm({ ca: await sharedCa });
  defer(t, () => swtpm.stop());
  return swtpm;
}

/** A scratch directory removed when the test ends. */
export async function scratch(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sextant-tpm-test-'));
  defer(t, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs one tpm2-tools command against `swtpm`; returns stdout. */
export async function tpm2(swtpm: Swtpm | null, tool: string, args: string[], cwd?: string): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, TSS2_LOG: 'all+none' };
  if (swtpm) env.TPM2TOOLS_TCTI = swtpm.tcti;
  const { stdout } = await execFileAsync(tool, args, { env, cwd, maxBuffer: 1 << 20 });
  return stdout;
}

/** `tpm2_pcrread sha256:…` as a map PCR -> value. */
export async function cliPcrRead(swtpm: Swtpm, pcrs: readonly number[]): Promise<Map<number, Buffer>> {
  const out = await tpm2(swtpm, 'tpm2_pcrread', [`sha256:${pcrs.join(',')}`]);
  const values = new Map<number, Buffer>();
  for (const m of out.matchAll(/^\s+(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*$/gm)) {
    values.set(Number(m[1]), Buffer.from(m[2] ?? '', 'hex'));
  }
  return values;
}
