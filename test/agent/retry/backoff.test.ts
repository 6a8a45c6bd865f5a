import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelays } from '../../../agent/retry/backoff.js';

function take<T>(it: Iterator<T>, n: number): T[] {
  return Array.from({ length: n }, () => it.next().value as T);
}

describe('backoffDelays', () => {
  it('grows by factor up to maxMs, with full jitter', () => {
    const ceilings = take(
      backoffDelays({ initialMs: 100, maxMs: 1000, factor: 2, random: () => 0.999999 }),
      7,
    );
    assert.deepEqual(ceilings, [99, 199, 399, 799, 999, 999, 999]);
    const zeros = take(backoffDelays({ initialMs: 100, maxMs: 1000, random: () => 0 }), 3);
    assert.deepEqual(zeros, [0, 0, 0]);
    const half = take(backoffDelays({ initialMs: 100, maxMs: 1000, factor: 3, random: () => 0.5 }), 4);
    assert.deepEqual(half, [50, 150, 450, 500]);
  });

  it('stays within [0, ceiling) with Math.random', () => {
    const delays = take(backoffDelays({ initialMs: 10, maxMs: 50 }), 200);
    assert.ok(delays.every((d) => d >= 0 && d < 50 && Number.isInteger(d)));
    assert.ok(new Set(delays).size > 5, 'jitter spreads delays');
  });

  it('rejects nonsensical options, naming them', () => {
    assert.throws(() => backoffDelays({ initialMs: -1, maxMs: 10 }).next(), /initialMs/);
    assert.throws(() => backoffDelays({ initialMs: 10, maxMs: 5 }).next(), /maxMs/);
    assert.throws(() => backoffDelays({ initialMs: 1, maxMs: 5, factor: 0.5 }).next(), /factor/);
  });
});
