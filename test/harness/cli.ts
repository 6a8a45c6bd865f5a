// The CLI run in this process with its output captured: what the CLI's own tests call instead of a child process.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type MainOptions, main } from '../../cli/main.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCliInProcess(
  args: string[],
  options: Omit<MainOptions, 'stdout' | 'stderr'> = {},
): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    ...options,
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { code, stdout, stderr };
}

/** Every file of a workspace with its contents: to show a refused command left it as it was. */
export async function filesOf(dir: string): Promise<Record<string, string>> {
  return Object.fromEntries(
    await Promise.all((await readdir(dir)).map(async (f) => [f, await readFile(join(dir, f), 'utf8')])),
  );
}
