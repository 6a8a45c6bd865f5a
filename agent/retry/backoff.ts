// Exponential backoff with full jitter (delay = random × min(max, initial × factor^n)), so that many nodes
// retrying the same JoinService spread out instead of arriving in waves.

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor?: number;
  /** [0, 1); Math.random by default, injectable for tests */
  random?: () => number;
}

export interface RetryOptions extends Partial<BackoffOptions> {
  signal?: AbortSignal;
  /** Attempts in total, including the first; unbounded when omitted. */
  maxAttempts?: number;
  /** An error for which this returns false is thrown at once. */
  shouldRetry?: (error: unknown, attempt: number) => boolean;
  /** Called before each wait, e.g. to log why the attempt failed. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Injectable for tests; must reject with the signal's reason when it aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export const DEFAULT_BACKOFF = { initialMs: 200, maxMs: 10_000, factor: 2 } as const;

function checkOptions(o: { initialMs: number; maxMs: number; factor: number }): void {
  if (!(Number.isFinite(o.initialMs) && o.initialMs >= 0)) {
    throw new Error(`backoff initialMs must be a finite number >= 0, got ${o.initialMs}`);
  }
  if (!(Number.isFinite(o.maxMs) && o.maxMs >= o.initialMs)) {
    throw new Error(`backoff maxMs must be a finite number >= initialMs (${o.initialMs}), got ${o.maxMs}`);
  }
  if (!(Number.isFinite(o.factor) && o.factor >= 1)) {
    throw new Error(`backoff factor must be a finite number >= 1, got ${o.factor}`);
  }
}

/** Endless delays: the n-th is uniform in [0, min(maxMs, initialMs × factor^n)). */
export function* backoffDelays(options: BackoffOptions): Generator<number, never, undefined> {
  const factor = options.factor ?? DEFAULT_BACKOFF.factor;
  checkOptions({ initialMs: options.initialMs, maxMs: options.maxMs, factor });
  const random = options.random ?? Math.random;
  let ceiling = options.initialMs;
  for (;;) {
    yield Math.floor(random() * ceiling);
    ceiling = Math.min(options.maxMs, ceiling * factor);
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

/** setTimeout as a promise that rejects with the signal's reason as soon as it aborts. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Calls fn until it resolves, waiting a backoff delay between attempts. Stops with the signal's reason when it
 * aborts (before an attempt or during a wait), and with the last error after maxAttempts or a non-retryable error.
 */
export async function retry<T>(
  fn: (attempt: number, signal?: AbortSignal) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const { signal, maxAttempts, shouldRetry, onRetry } = options;
  if (maxAttempts !== undefined && !(Number.isInteger(maxAttempts) && maxAttempts >= 1)) {
    throw new Error(`retry maxAttempts must be an integer >= 1, got ${maxAttempts}`);
  }
  const sleep = options.sleep ?? abortableSleep;
  const delays = backoffDelays({
    initialMs: options.initialMs ?? DEFAULT_BACKOFF.initialMs,
    maxMs: options.maxMs ?? Math.max(DEFAULT_BACKOFF.maxMs, options.initialMs ?? 0),
    factor: options.factor ?? DEFAULT_BACKOFF.factor,
    ...(options.random ? { random: options.random } : {}),
  });
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw abortReason(signal);
    try {
      return await fn(attempt, signal);
    } catch (error) {
      if (signal?.aborted) throw abortReason(signal);
      if (maxAttempts !== undefined && attempt >= maxAttempts) throw error;
      if (shouldRetry && !shouldRetry(error, attempt)) throw error;
      const delay = delays.next().value;
      onRetry?.(error, attempt, delay);
      await sleep(delay, signal);
    }
  }
}
