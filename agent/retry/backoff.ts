// Exponential backoff with full jitter (delay = random × min(max, initial × factor^n)), so that many nodes
// retrying the same JoinService spread out instead of arriving in waves.

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor?: number;
  /** [0, 1); Math.random by default, injectable for tests */
  random?: () => number;
}

const DEFAULT_BACKOFF = { initialMs: 200, maxMs: 10_000, factor: 2 } as const;

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
