/** Caps how many attestation verifications run at once; callers over the cap are refused, not queued forever. */
export class Semaphore {
  #active = 0;
  readonly #waiters: (() => void)[] = [];

  constructor(
    readonly capacity: number,
    readonly maxQueue: number,
  ) {}

  /** Resolves with a release function, or rejects at once when the queue is full. */
  async acquire(): Promise<() => void> {
    if (this.#active < this.capacity) {
      this.#active++;
      return () => this.#release();
    }
    if (this.#waiters.length >= this.maxQueue) throw new Error('too many verifications in flight');
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
    this.#active++;
    return () => this.#release();
  }

  #release(): void {
    this.#active--;
    this.#waiters.shift()?.();
  }
}

/** A token bucket per peer address: a misbehaving node cannot starve the others. */
export class PeerRateLimiter {
  readonly #buckets = new Map<string, { tokens: number; updated: number }>();

  constructor(
    readonly burst: number,
    readonly perSecond: number,
    private readonly now: () => number = Date.now,
  ) {}

  allow(peer: string): boolean {
    const t = this.now();
    const bucket = this.#buckets.get(peer) ?? { tokens: this.burst, updated: t };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((t - bucket.updated) / 1000) * this.perSecond);
    bucket.updated = t;
    this.#buckets.set(peer, bucket);
    if (this.#buckets.size > 10_000) this.#evict(t);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  #evict(t: number): void {
    for (const [peer, b] of this.#buckets) {
      if (t - b.updated > 60_000) this.#buckets.delete(peer);
    }
  }
}

/** The address part of a grpc-js peer string ("1.2.3.4:5678", "[::1]:5678"). */
export function peerHost(peer: string): string {
  const m = /^\[?([^\]]+?)\]?:\d+$/.exec(peer.replace(/^ipv[46]:/, ''));
  return m?.[1] ?? peer;
}
