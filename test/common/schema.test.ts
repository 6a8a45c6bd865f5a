import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as v from 'valibot';
import {
  checkedString,
  describeValue,
  integer,
  matching,
  parseWith,
  SchemaError,
  strictObject,
} from '../../common/schema.js';

const schema = strictObject({
  name: matching(/^[a-z]+$/, 'lowercase letters'),
  count: integer(1, 9),
  port: checkedString(
    'a port name',
    (s) => s.startsWith('p'),
    (s) => `"${s[0]}" is not "p"`,
  ),
  tags: v.optional(v.array(v.string('expected a string'), 'expected a list'), []),
  inner: v.optional(strictObject({ flag: v.boolean('expected true or false') })),
});
const good = { name: 'ab', count: 3, port: 'p1' };

describe('common/schema', () => {
  it('returns the typed output with defaults', () => {
    assert.deepEqual(parseWith(schema, good), { ...good, tags: [] });
  });

  it('names the key path and what was expected, with the value seen', () => {
    const cases: [unknown, string, string][] = [
      [{ ...good, name: 'AB' }, 'name', 'expected lowercase letters, got "AB"'],
      [{ ...good, count: 10 }, 'count', 'expected an integer from 1 to 9, got 10'],
      [{ ...good, count: '3' }, 'count', 'expected an integer from 1 to 9, got "3"'],
      [{ ...good, port: 'x1' }, 'port', 'expected a port name, got "x1" ("x" is not "p")'],
      [{ ...good, tags: ['a', 2] }, 'tags[1]', 'expected a string, got 2'],
      [{ ...good, inner: { flag: 'yes' } }, 'inner.flag', 'expected true or false, got "yes"'],
      [{ ...good, inner: [] }, 'inner', 'expected a mapping, got a list'],
      [{ ...good, extra: 1 }, 'extra', 'unknown key (expected one of: name, count, port, tags, inner)'],
      [{ count: 3, port: 'p1' }, 'name', 'expected lowercase letters, got nothing'],
      [null, '', 'expected a mapping, got null'],
    ];
    for (const [input, keyPath, detail] of cases) {
      assert.throws(
        () => parseWith(schema, input),
        (err: unknown) => err instanceof SchemaError && err.keyPath === keyPath && err.detail === detail,
        JSON.stringify(input),
      );
    }
    assert.throws(() => parseWith(schema, { ...good, count: 0 }), /^SchemaError: count: expected/);
  });

  it('never shows the value when redacted', () => {
    assert.throws(
      () => parseWith(schema, { ...good, name: 'SECRET' }, { redact: true }),
      (err: Error) => err.message === 'name: expected lowercase letters',
    );
    assert.throws(
      () => parseWith(schema, { ...good, port: 'SECRET' }, { redact: true }),
      (err: Error) => !err.message.includes('SECRET') && /a value not shown/.test(err.message),
    );
  });

  it('hides the value only for the key paths a redact predicate names', () => {
    const secretName = { redact: (path: string) => path === 'name' };
    assert.throws(
      () => parseWith(schema, { ...good, name: 'SECRET' }, secretName),
      (err: Error) => err.message === 'name: expected lowercase letters',
    );
    assert.throws(
      () => parseWith(schema, { ...good, count: 0 }, secretName),
      /^SchemaError: count: expected .*, got 0$/,
    );
  });

  it('describes values briefly', () => {
    assert.equal(describeValue(undefined), 'nothing');
    assert.equal(describeValue('x'.repeat(100)), JSON.stringify(`${'x'.repeat(60)}…`));
    assert.equal(describeValue(Buffer.alloc(5)), '5 bytes');
    assert.equal(describeValue({}), 'a mapping');
    assert.equal(describeValue(7n), '7');
  });
});
