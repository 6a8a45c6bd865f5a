import { timingSafeEqual } from 'node:crypto';

/** Compares two secrets without leaking where they differ; different lengths are simply unequal. */
export function secretsEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) {
    // Still spend comparable time so length is the only thing a timing observer learns.
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}
