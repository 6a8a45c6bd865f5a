// sextant version [-o json]
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packageRoot } from '../config/resolve.js';
import { defineCommand } from './command.js';
import type { CommandContext } from './context.js';
import { OUTPUT_HELP, OUTPUT_OPTION, type OutputFormat, parseOutputFormat, writeOutput } from './output.js';

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

export interface VersionReport {
  cli: string;
  node: string;
  platform: string;
}

export async function version(ctx: CommandContext, options: { output: OutputFormat }): Promise<number> {
  const report: VersionReport = {
    cli: await cliVersion(),
    node: process.version,
    platform: `${process.platform}/${process.arch}`,
  };
  writeOutput(ctx.stdout, options.output, report, (r) => `sextant ${r.cli}\nnode ${r.node} ${r.platform}\n`);
  return 0;
}

export const versionCommand = defineCommand<{ output: OutputFormat }>({
  path: ['version'],
  summary: 'print the CLI version',
  usage: 'sextant version [-o json]',
  help: ['Prints the version of this CLI and of the Node runtime it runs on.', '', OUTPUT_HELP].join('\n'),
  options: { ...OUTPUT_OPTION },
  maxPositionals: 0,
  parse: ({ values }) => ({ output: parseOutputFormat(values.output, 'version') }),
  run: (ctx, options) => version(ctx, options),
});
