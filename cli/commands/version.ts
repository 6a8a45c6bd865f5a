// sextant version
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packageRoot } from '../config/resolve.js';
import { defineCommand } from './command.js';
import type { CommandContext } from './context.js';

/** The CLI's version from the package it belongs to (works from cli/ under tsx and from dist/cli/). */
export async function cliVersion(): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(join(packageRoot(), 'package.json'), 'utf8')) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export async function version(ctx: CommandContext): Promise<number> {
  ctx.stdout.write(
    `sextant ${await cliVersion()}\nnode ${process.version} ${process.platform}/${process.arch}\n`,
  );
  return 0;
}

export const versionCommand = defineCommand<Record<string, never>>({
  path: ['version'],
  summary: 'print the CLI version',
  usage: 'sextant version',
  help: 'Prints the version of this CLI and of the Node runtime it runs on.',
  options: {},
  maxPositionals: 0,
  parse: () => ({}),
  run: (ctx) => version(ctx),
});
