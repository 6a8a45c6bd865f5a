// The shape of one command: how it is called, how its raw arguments become typed options, and what it does.
import type { ParseArgsConfig } from 'node:util';
import { type Endpoint, parseEndpoint } from '../../common/net.js';
import { parseKmsUri } from '../kms/uri.js';
import type { Backends } from './backends.js';
import { type CommandContext, UsageError } from './context.js';

export type OptionSpecs = NonNullable<ParseArgsConfig['options']>;

export interface RawArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export interface Command<T = unknown> {
  /** Words that select it, e.g. ["config", "generate"]. */
  path: string[];
  summary: string;
  /** One line, e.g. "sextant init [--force] [--endpoint host:port] [--timeout S]". */
  usage: string;
  /** Option descriptions and notes, printed under the usage line by --help. */
  help: string;
  options: OptionSpecs;
  /** Most positionals the command takes. */
  maxPositionals: number;
  /** Raw arguments → typed options; throws UsageError. */
  parse(args: RawArgs): T;
  run(ctx: CommandContext, options: T, backends: Backends): Promise<number>;
}

/** Erases the option type so commands of different types fit in one table. */
export function defineCommand<T>(command: Command<T>): Command<unknown> {
  return command as unknown as Command<unknown>;
}

/** Seconds as a positive number (fractions allowed), or a UsageError naming the flag. */
export function parsePositiveSeconds(value: string, flag: string, command: string): number {
  const n = Number(value);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(value) || !(n > 0)) {
    throw new UsageError(
      `${flag}: expected a positive number of seconds, got ${JSON.stringify(value)}`,
      command,
    );
  }
  return n;
}

/** `--endpoint host:port` (port defaults to `defaultPort`), or a UsageError naming the flag and the reason. */
export function endpointOption(value: string, defaultPort: number, command: string): Endpoint {
  try {
    return parseEndpoint(value, defaultPort);
  } catch (err) {
    throw new UsageError(`--endpoint: ${(err as Error).message}`, command);
  }
}

/** `--kms URI` checked (cli/kms/uri.ts), or a UsageError naming the flag and the forms it takes. */
export function kmsOption(value: string, command: string): string {
  try {
    parseKmsUri(value);
  } catch (err) {
    throw new UsageError(`--kms: ${(err as Error).message}`, command);
  }
  return value;
}
