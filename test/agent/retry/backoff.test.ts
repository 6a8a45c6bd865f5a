import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { abortableSleep, backoffDelays, retry } from '../../../agent/retry/backoff.js';

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

describe('retry', () => {
  it('retries until fn succeeds, sleeping the backoff delays and reporting each failure', async () => {
    const slept: number[] = [];
    const failures: string[] = [];
    const result = await retry(
      async (attempt) => {
        if (attempt < 4) throw new Error(`no JoinService (${attempt})`);
        return `joined on ${attempt}`;
      },
      {
        initialMs: 100,
        maxMs: 300,
        random: () => 0.5,
        sleep: async (ms) => {
          slept.push(ms);
        },
        onRetry: (err, attempt, delay) => failures.push(`${attempt}:${(err as Error).message}:${delay}`),
      },
    );
    assert.equal(result, 'joined on 4');
    assert.deepEqual(slept, [50, 100, 150]);
    assert.deepEqual(failures, [
      '1:no JoinService (1):50',
      '2:no JoinService (2):100',
      '3:no JoinService (3):150',
    ]);
  });

  it('gives up after maxAttempts with the last error, and at once on a non-retryable error', async () => {
    let calls = 0;
    await assert.rejects(
      retry(
        async () => {
          calls++;
          throw new Error(`fail ${calls}`);
        },
        { maxAttempts: 3, sleep: async () => {} },
      ),
      /fail 3/,
    );
    assert.equal(calls, 3);
    calls = 0;
    await assert.rejects(
      retry(
        async () => {
          calls++;
          throw new Error('refused: PCR 4 differs');
        },
        { shouldRetry: (e) => !/refused/.test((e as Error).message), sleep: async () => {} },
      ),
      /PCR 4/,
    );
    assert.equal(calls, 1);
    await assert.rejects(
      retry(async () => 1, { maxAttempts: 0 }),
      /maxAttempts/,
    );
  });

  it('stops when the signal aborts during a wait, with the signal reason', async () => {
    const controller = new AbortController();
    let calls = 0;
    const started = Date.now();
    const p = retry(
      async () => {
        calls++;
        if (calls === 1) setTimeout(() => controller.abort(new Error('init won the lock')), 20);
        throw new Error('unreachable');
      },
      { signal: controller.signal, initialMs: 5_000, maxMs: 5_000, random: () => 0.99 },
    );
    await assert.rejects(p, /init won the lock/);
    assert.ok(Date.now() - started < 2_000, 'abort interrupts the sleep');
    assert.equal(calls, 1, 'the first wait is the one aborted');
  });

  it('does not call fn when already aborted, and stops when fn fails because of the abort', async () => {
    const aborted = AbortSignal.abort(new Error('stopping'));
    let called = false;
    await assert.rejects(
      retry(
        async () => {
          called = true;
        },
        { signal: aborted },
      ),
      /stopping/,
    );
    assert.equal(called, false);

    const controller = new AbortController();
    await assert.rejects(
      retry(
        async (_attempt, signal) => {
          controller.abort(new Error('shutdown'));
          signal?.throwIfAborted();
        },
        { signal: controller.signal, sleep: async () => assert.fail('no sleep after abort') },
      ),
      /shutdown/,
    );
  });
});

describe('abortableSleep', () => {
  it('resolves after the delay, or rejects with an AbortError when aborted without a reason', async () => {
    await abortableSleep(1);
    const controller = new AbortController();
    const p = abortableSleep(10_000, controller.signal);
    controller.abort();
    await assert.rejects(p, { name: 'AbortError' });
    await assert.rejects(abortableSleep(1, controller.signal), { name: 'AbortError' });
  });
});
