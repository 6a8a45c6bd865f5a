#!/usr/bin/env node
// sextant: the operator's CLI. commander parses the command line (every command of COMMANDS, by its path, with its
// flags); each command turns its raw values into typed options and runs; errors become one line and an exit code.
import { readFileSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command as Cli, CommanderError, Option } from 'commander';
import { liveBackends } from './backends/index.js';
import type { Backends } from './commands/backends.js';
import type { Command } from './commands/command.js';
import { createContext, UsageError, type Writer } from './commands/context.js';
import { COMMANDS } from './commands/index.js';
import { packageRoot } from './config/resolve.js';

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

const GLOBAL_FLAGS = [
  '  --workspace DIR  the workspace (default: the current directory)',
  '  --debug          print the stack of an unexpected error',
  "  --help, -h       this text; a command's help: sextant help <command> or sextant <command> --help",
  '  --version, -V    the CLI version',
];

function listing(commands: readonly Command[], indent = '  '): string[] {
  const width = Math.max(...commands.map((c) => c.path.join(' ').length));
  return commands.map((c) => `${indent}${c.path.join(' ').padEnd(width)}  ${c.summary}`);
}

function topLevelHelp(): string {
  return [
    'sextant: bootstrap a confidential Kubernetes cluster from a workspace directory',
    '',
    'usage: sextant [--workspace DIR] <command> [flags]',
    '',
    ...listing(COMMANDS),
    '  completion bash  print a bash completion script (source <(sextant completion bash))',
    '',
    ...GLOBAL_FLAGS,
    '',
  ].join('\n');
}

function commandHelp(c: Command): string {
  return `usage: ${c.usage} [--workspace DIR]\n\n${c.help}\n`;
}

function groupHelp(word: string): string {
  const members = COMMANDS.filter((c) => c.path[0] === word);
  return [`usage: sextant ${word} <command> [flags]`, '', ...listing(members), ''].join('\n');
}

function cliVersionSync(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** A bash completion script: command words, then each command's flags. */
export function bashCompletion(): string {
  const groups = new Map<string, string[]>();
  for (const c of COMMANDS) {
    const words = groups.get(c.path[0] as string) ?? [];
    if (c.path[1]) words.push(c.path[1]);
    groups.set(c.path[0] as string, words);
  }
  const cases = COMMANDS.map((c) => {
    const flags = [...Object.keys(c.options).map((f) => `--${f}`), '--workspace', '--help'].join(' ');
    return `    "${c.path.join(' ')}") flags="${flags}" ;;`;
  });
  const subs = [...groups]
    .filter(([, w]) => w.length > 0)
    .map(([g, w]) => `    ${g}) subs="${w.join(' ')}" ;;`);
  return `# bash completion for sextant: source <(sextant completion bash)
_sextant() {
  local cur=\${COMP_WORDS[COMP_CWORD]} words=() w i subs="" flags=""
  for ((i = 1; i < COMP_CWORD; i++)); do w=\${COMP_WORDS[i]}; [[ $w == -* ]] || words+=("$w"); done
  if [ \${#words[@]} -eq 0 ]; then
    COMPREPLY=($(compgen -W "${[...groups.keys()].join(' ')} help completion --workspace --help --version --debug" -- "$cur")); return
  fi
  case \${words[0]} in
${subs.join('\n')}
  esac
  if [ -n "$subs" ] && [ \${#words[@]} -eq 1 ]; then COMPREPLY=($(compgen -W "$subs" -- "$cur")); return; fi
  case "\${words[*]:0:2}" in
${cases.join('\n')}
  esac
  COMPREPLY=($(compgen -W "$flags" -- "$cur"))
}
complete -F _sextant sextant
`;
}

interface Selected {
  command: Command;
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** The commander tree: groups ("config", "mini", …) hold their commands; every command records what was chosen. */
function program(out: Writer, err: Writer, select: (s: Selected | 'completion') => void): Cli {
  const root = new Cli('sextant')
    .option('--workspace <dir>')
    .option('--debug')
    .version(`sextant ${cliVersionSync()}`, '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => out.write(s),
      writeErr: (s) => err.write(s),
      outputError: () => undefined,
    })
    .allowExcessArguments(false);
  root.helpInformation = topLevelHelp;
  const groups = new Map<string, Cli>();
  for (const c of COMMANDS) {
    let parent = root;
    if (c.path.length === 2) {
      const word = c.path[0] as string;
      let group = groups.get(word);
      if (!group) {
        group = root.command(word).exitOverride();
        group.helpInformation = () => groupHelp(word);
        groups.set(word, group);
      }
      parent = group;
    }
    const sub = parent
      .command(c.path[c.path.length - 1] as string)
      .exitOverride()
      .argument('[args...]');
    sub.helpInformation = () => commandHelp(c);
    const names = new Map<string, string>();
    for (const [flag, spec] of Object.entries(c.options)) {
      const o = new Option(
        `${spec.short ? `-${spec.short}, ` : ''}--${flag}${spec.type === 'string' ? ' <value>' : ''}`,
      );
      if (spec.multiple) o.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
      sub.addOption(o);
      names.set(flag, o.attributeName());
    }
    sub.action((args: string[], opts: Record<string, string | boolean | undefined>) => {
      const values: Record<string, string | boolean | undefined> = {};
      for (const [flag, attr] of names) values[flag] = opts[attr];
      select({ command: c, values, positionals: args });
    });
  }
  root
    .command('completion')
    .argument('<shell>')
    .exitOverride()
    .action((shell: string) => {
      if (shell !== 'bash')
        throw new UsageError(`completion: only bash is supported, got ${JSON.stringify(shell)}`);
      select('completion');
    });
  root.helpCommand(false); // `help <command…>` is answered by main(), nested groups included
  return root;
}

/** The command words argv names (skipping flag values), for error messages before a command was chosen. */
function nameOf(argv: string[]): string {
  const words = argv.filter((a) => !a.startsWith('-'));
  const known = COMMANDS.map((c) => c.path.join(' ')).sort((a, b) => b.length - a.length);
  return known.find((k) => words.join(' ').startsWith(k)) ?? '';
}

export async function main(argv: string[], options: MainOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  if (argv.length === 0) {
    stdout.write(topLevelHelp());
    return EXIT_USAGE;
  }
  if (argv[0] === 'help') {
    const words = argv.slice(1).filter((a) => !a.startsWith('-'));
    const command = COMMANDS.find((c) => c.path.join(' ') === words.join(' '));
    if (command) stdout.write(commandHelp(command));
    else if (words.length === 1 && COMMANDS.some((c) => c.path[0] === words[0]))
      stdout.write(groupHelp(words[0] as string));
    else if (words.length === 0) stdout.write(topLevelHelp());
    else {
      stderr.write(`sextant help: unknown command ${JSON.stringify(words.join(' '))}\n\n${topLevelHelp()}`);
      return EXIT_USAGE;
    }
    return EXIT_OK;
  }
  let selected: Selected | 'completion' | undefined;
  const cli = program(stdout, stderr, (s) => {
    selected = s;
  });
  try {
    await cli.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // a group word alone ("sextant config") printed its commands to stderr: a usage error
      if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
      if (['commander.helpDisplayed', 'commander.version'].includes(err.code)) return EXIT_OK;
      const name = nameOf(argv);
      const message = err.message.replace(/^error: /, '');
      if (err.code === 'commander.unknownCommand') {
        const words = argv.filter((a) => !a.startsWith('-')).join(' ');
        stderr.write(`sextant: unknown command ${JSON.stringify(words)}\n\n${topLevelHelp()}`);
        return EXIT_USAGE;
      }
      stderr.write(
        `sextant${name ? ` ${name}` : ''}: ${message}\n(see: sextant ${name ? `${name} ` : ''}--help)\n`,
      );
      return EXIT_USAGE;
    }
    if (err instanceof UsageError) {
      stderr.write(`sextant ${err.message}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  const globals = cli.opts<{ workspace?: string; debug?: boolean }>();
  if (selected === 'completion') {
    stdout.write(bashCompletion());
    return EXIT_OK;
  }
  if (!selected) {
    // a group word alone ("sextant config"): its commands
    stderr.write(groupHelp(argv.find((a) => !a.startsWith('-')) ?? ''));
    return EXIT_USAGE;
  }
  const { command } = selected;
  const name = command.path.join(' ');
  const workspace = resolve(options.cwd ?? process.cwd(), globals.workspace ?? '.');
  const ctx = createContext({ workspace, stdout, stderr, ...(options.env ? { env: options.env } : {}) });
  try {
    if (selected.positionals.length > command.maxPositionals) {
      throw new UsageError(
        `unexpected argument ${JSON.stringify(selected.positionals[command.maxPositionals])}`,
        name,
      );
    }
    const typed = command.parse({ values: selected.values, positionals: selected.positionals });
    return await command.run(ctx, typed, options.backends ?? liveBackends());
  } catch (err) {
    if (err instanceof UsageError) {
      stderr.write(`sextant ${name}: ${err.message}\n${commandHelp(command)}`);
      return EXIT_USAGE;
    }
    stderr.write(`sextant ${name}: ${(err as Error).message}\n`);
    if (globals.debug && err instanceof Error && err.stack) stderr.write(`${err.stack}\n`);
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
  // `sextant … | head -1`: the reader left; nothing more to say, and no stack for it
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw err;
    });
  }
  process.exitCode = await main(process.argv.slice(2));
}
