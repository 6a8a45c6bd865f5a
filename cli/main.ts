#!/usr/bin/env node
// sextant: the operator's CLI. Finds the command, parses its flags, runs it, and turns errors into one line.
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { liveBackends } from './backends/index.js';
import type { Backends } from './commands/backends.js';
import type { Command } from './commands/command.js';
import { createContext, UsageError, type Writer } from './commands/context.js';
import { COMMANDS } from './commands/index.js';

export interface MainOptions {
  backends?: Backends;
  stdout?: Writer;
  stderr?: Writer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

function topLevelHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.path.join(' ').length));
  return [
    'sextant: bootstrap a confidential Kubernetes cluster from a workspace directory',
    '',
    'usage: sextant [--workspace DIR] <command> [flags]',
    '',
    ...COMMANDS.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`),
    '',
    '  --workspace DIR  the workspace (default: the current directory)',
    "  --help           this text, or a command's help: sextant <command> --help",
    '',
  ].join('\n');
}

function commandHelp(c: Command): string {
  return `usage: ${c.usage} [--workspace DIR]\n\n${c.help}\n`;
}

/** The non-flag words of argv, skipping the value after any flag that takes one (`--workspace DIR`). */
function commandWords(argv: string[]): string[] {
  const takesValue = new Set(['workspace']);
  for (const c of COMMANDS) {
    for (const [flag, spec] of Object.entries(c.options)) if (spec.type === 'string') takesValue.add(flag);
  }
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('-')) words.push(a);
    else if (a.startsWith('--') && !a.includes('=') && takesValue.has(a.slice(2))) i++;
  }
  return words;
}

/** The command whose words start argv, the longest match first ("config generate" before "config"). */
function findCommand(words: string[]): Command | undefined {
  return [...COMMANDS]
    .sort((a, b) => b.path.length - a.path.length)
    .find((c) => c.path.every((w, i) => words[i] === w));
}

export async function main(argv: string[], options: MainOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const words = commandWords(argv);
  const command = findCommand(words);
  if (!command) {
    if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
      stdout.write(topLevelHelp());
      return argv.length === 0 ? EXIT_USAGE : EXIT_OK;
    }
    stderr.write(`sextant: unknown command ${JSON.stringify(words.join(' '))}\n\n${topLevelHelp()}`);
    return EXIT_USAGE;
  }
  const name = command.path.join(' ');
  // The command's own words are removed once, where they stand; what is left is its flags and positionals.
  const rest = [...argv];
  for (const w of command.path) rest.splice(rest.indexOf(w), 1);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...command.options, workspace: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    stderr.write(`sextant ${name}: ${(err as Error).message}\n${commandHelp(command)}`);
    return EXIT_USAGE;
  }
  if (parsed.values.help) {
    stdout.write(commandHelp(command));
    return EXIT_OK;
  }
  const workspace = resolve(options.cwd ?? process.cwd(), (parsed.values.workspace as string) ?? '.');
  const ctx = createContext({ workspace, stdout, stderr, ...(options.env ? { env: options.env } : {}) });
  try {
    if (parsed.positionals.length > command.maxPositionals) {
      throw new UsageError(
        `unexpected argument ${JSON.stringify(parsed.positionals[command.maxPositionals])}`,
        name,
      );
    }
    const typed = command.parse({
      values: parsed.values as Record<string, string | boolean | undefined>,
      positionals: parsed.positionals,
    });
    return await command.run(ctx, typed, options.backends ?? liveBackends());
  } catch (err) {
    if (err instanceof UsageError) {
      stderr.write(`sextant ${name}: ${err.message}\n${commandHelp(command)}`);
      return EXIT_USAGE;
    }
    stderr.write(`sextant ${name}: ${(err as Error).message}\n`);
    return EXIT_FAILURE;
  }
}

function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  process.exitCode = await main(process.argv.slice(2));
}
