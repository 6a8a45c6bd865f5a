// How every input of the CLI and the agent is checked: a valibot schema, and one way to turn its first issue into an
// error that names the key path and what was expected ("kubernetes.components[0].sha256: expected 64 hex digits,
// got "abc""). Schemas give their own messages as "expected …"; the value is appended (or put where the message says
// {got}) unless the input is secret.
import * as v from 'valibot';

/** A value that does not fit its schema. `keyPath` is empty for the document itself. */
export class SchemaError extends Error {
  override name = 'SchemaError';
  constructor(
    readonly keyPath: string,
    readonly detail: string,
  ) {
    super(keyPath ? `${keyPath}: ${detail}` : detail);
  }
}

/** How a wrong value is shown: enough to recognise it, never more than a short excerpt. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (Array.isArray(value)) return 'a list';
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `${value.length} bytes`;
  return 'a mapping';
}

/** "a.b[0].c" from an issue's path. */
function keyPathOf(issue: v.BaseIssue<unknown>): string {
  let out = '';
  for (const item of issue.path ?? []) {
    const key = item.key;
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  boolean: 'true or false',
  Array: 'a list',
  Object: 'a mapping',
};

function detailOf(issue: v.BaseIssue<unknown>, redact: boolean): string {
  const path = issue.path ?? [];
  const last = path[path.length - 1];
  let message = issue.message;
  // A key the object schema names but the input lacks, with no message from strictObject below.
  if (message.startsWith('Invalid key') && issue.expected === JSON.stringify(last?.key)) return 'missing';
  if (message.startsWith('Invalid ')) {
    // valibot's default wording: say it our way
    message = `expected ${TYPE_NAMES[issue.expected ?? ''] ?? issue.expected}`;
  }
  if (message.includes('{got}'))
    return message.replace('{got}', redact ? 'a value not shown' : describeValue(issue.input));
  if (!message.startsWith('expected ') || redact) return message;
  return `${message}, got ${describeValue(issue.input)}`;
}

/**
 * Checks `input` against `schema` and returns its typed output; throws SchemaError naming the first problem.
 * `redact` hides the value in the error: always, or for the key paths it accepts (the secret fields of a document).
 */
export function parseWith<S extends v.GenericSchema>(
  schema: S,
  input: unknown,
  options: { redact?: boolean | ((keyPath: string) => boolean) } = {},
): v.InferOutput<S> {
  const result = v.safeParse(schema, input, { abortEarly: true });
  if (result.success) return result.output;
  const issue = result.issues[0];
  const keyPath = keyPathOf(issue);
  const redact = typeof options.redact === 'function' ? options.redact(keyPath) : (options.redact ?? false);
  throw new SchemaError(keyPath, detailOf(issue, redact));
}

/**
 * An object with exactly these keys: an unknown key is an error listing the known ones, so a typo never falls back
 * to a default silently.
 */
export function strictObject<E extends v.ObjectEntries>(entries: E, what = 'a mapping') {
  const known = Object.keys(entries).join(', ');
  return v.pipe(
    // valibot takes a list for an object; a config never means one
    v.custom<Record<string, unknown>>(
      (x) => typeof x === 'object' && x !== null && !Array.isArray(x),
      `expected ${what}`,
    ),
    v.strictObject(entries, (issue) => {
      if (issue.expected === 'never') return `unknown key (expected one of: ${known})`;
      if (issue.received !== 'undefined' || !issue.expected?.startsWith('"')) return `expected ${what}`;
      // a missing key: say what it should have held, from its own schema's message
      const entry = entries[JSON.parse(issue.expected) as string] as
        | { message?: unknown; pipe?: { message?: unknown }[] }
        | undefined;
      const expected = entry?.message ?? entry?.pipe?.[0]?.message;
      return typeof expected === 'string' && expected.startsWith('expected ') ? expected : 'missing';
    }),
  );
}

/** A string matching `pattern`; `what` says what is expected. */
export function matching(pattern: RegExp, what: string) {
  return v.pipe(v.string(`expected ${what}`), v.regex(pattern, `expected ${what}`));
}

/** An integer from `min` to `max`. */
export function integer(min: number, max: number, what = `an integer from ${min} to ${max}`) {
  return v.pipe(
    v.number(`expected ${what}`),
    v.integer(`expected ${what}`),
    v.minValue(min, `expected ${what}`),
    v.maxValue(max, `expected ${what}`),
  );
}

/** A string the predicate accepts; `why` may explain a refusal from the value. */
export function checkedString(
  what: string,
  accept: (s: string) => boolean,
  why?: (s: string) => string | undefined,
) {
  return v.pipe(
    v.string(`expected ${what}`),
    v.check(accept, (issue) => {
      const reason = why?.(issue.input as string);
      return reason ? `expected ${what}, got {got} (${reason})` : `expected ${what}`;
    }),
  );
}
