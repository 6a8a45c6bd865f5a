// `-o json` / `--output json`: how every command that reports something says it, as text (the default, for a
// person) or as one JSON document on stdout (for a script). Warnings and progress stay on stderr either way.
import type { OptionSpecs } from './command.js';
import { UsageError, type Writer } from './context.js';

const FORMATS = ['text', 'json'] as const;

export type OutputFormat = (typeof FORMATS)[number];

function isFormat(value: string): value is OutputFormat {
  return (FORMATS as readonly string[]).includes(value);
}

/** The flag, for a command's `options`. */
export const OUTPUT_OPTION: OptionSpecs = { output: { type: 'string', short: 'o' } };

/** The flag's line in a command's --help. */
export const OUTPUT_HELP = '  -o, --output FORMAT       text (default) or json (one JSON document on stdout)';

/** The raw `--output` value as a format, or a UsageError naming the flag and what it takes. */
export function parseOutputFormat(value: string | boolean | undefined, command: string): OutputFormat {
  if (value === undefined) return 'text';
  if (typeof value === 'string' && isFormat(value)) return value;
  throw new UsageError(`--output: expected text or json, got ${JSON.stringify(value)}`, command);
}

/** Writes a command's result: `text(result)` as it is, or the result as indented JSON and a newline. */
export function writeOutput<T>(
  out: Writer,
  format: OutputFormat,
  result: T,
  text: (result: T) => string,
): void {
  out.write(format === 'json' ? `${JSON.stringify(result, null, 2)}\n` : text(result));
}
