// `sextant` as the operator runs it: its own process (so Ctrl-C and SIGKILL are real signals), on loopback.
import { type ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '../../..');

export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once stderr contains a match (progress lines go there), rejects after `timeoutMs`. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

export function startCli(workspace: string, args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(REPO, 'cli/main.ts'), ...args, '--workspace', workspace],
    { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  const waiters: { pattern: RegExp; done: () => void }[] = [];
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
    for (const w of [...waiters]) {
      if (w.pattern.test(err)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.done();
      }
    }
  });
  const exited = new Promise<number | null>((res) =>
    child.once('exit', (code, signal) => res(code ?? (signal ? 128 : null))),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForStderr(pattern, timeoutMs = 60_000) {
      if (pattern.test(err)) return Promise.resolve();
      return new Promise((res, rej) => {
        const timer = setTimeout(
          () => rej(new Error(`no ${pattern} on the CLI's stderr within ${timeoutMs} ms:\n${err}`)),
          timeoutMs,
        );
        waiters.push({
          pattern,
          done: () => {
            clearTimeout(timer);
            res();
          },
        });
        void exited.then(() => {
          if (!pattern.test(err)) {
            clearTimeout(timer);
            rej(new Error(`the CLI exited without ${pattern} on stderr:\n${err}`));
          }
        });
      });
    },
  };
}

/** Runs the CLI to its end. */
export async function runCliLocal(
  workspace: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = startCli(workspace, args, env);
  const code = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}
