import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../common/grpc.js';

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

/** One token bucket (not per peer): a budget of operations per second with a burst. */
export class TokenBucket {
  #tokens: number;
  #updated: number;

  constructor(
    readonly burst: number,
    readonly perSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    this.#tokens = burst;
    this.#updated = now();
  }

  /** Takes `n` tokens when there are that many; false (nothing taken) otherwise. */
  take(n: number): boolean {
    const t = this.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((t - this.#updated) / 1000) * this.perSecond);
    this.#updated = t;
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }
}

/** A call the limits refuse: RESOURCE_EXHAUSTED with the reason. */
export class LimitRefusal extends StatusError {
  constructor(message: string) {
    super(grpc.status.RESOURCE_EXHAUSTED, message);
  }
}

export interface CallLimitsOptions {
  burstPerPeer: number;
  perPeerPerSecond: number;
  maxConcurrent: number;
  maxQueued: number;
  /** TPM operations (quote, credential activation) per second all callers share, and their burst */
  tpmOpsPerSecond: number;
  tpmOpsBurst: number;
}

export const DEFAULT_CALL_LIMITS: CallLimitsOptions = {
  burstPerPeer: 10,
  perPeerPerSecond: 2,
  maxConcurrent: 64,
  maxQueued: 1024,
  tpmOpsPerSecond: 200,
  tpmOpsBurst: 400,
};

/**
 * What every attested-TLS call of a node passes before it may cost anything: the per-peer token bucket, the TPM
 * operation budget, and the global concurrency bound — one instance per process, shared by the node's port
 * (Identify/Attest, init) and the JoinService's (Identify/Attest, tickets), since both reach the same TPM.
 */
export class CallLimits {
  readonly rate: PeerRateLimiter;
  readonly semaphore: Semaphore;
  readonly tpm: TokenBucket;

  constructor(options: Partial<CallLimitsOptions> = {}, now: () => number = Date.now) {
    const o = { ...DEFAULT_CALL_LIMITS, ...options };
    this.rate = new PeerRateLimiter(o.burstPerPeer, o.perPeerPerSecond, now);
    this.semaphore = new Semaphore(o.maxConcurrent, o.maxQueued);
    this.tpm = new TokenBucket(o.tpmOpsBurst, o.tpmOpsPerSecond, now);
  }

  /**
   * Admits one call from `peer` that costs `tpmOps` TPM operations: resolves with the release of its concurrency
   * slot, or rejects with a LimitRefusal before anything ran.
   */
  async admit(peer: string, tpmOps: number): Promise<() => void> {
    if (!this.rate.allow(peerHost(peer))) throw new LimitRefusal('too many requests from this address');
    if (tpmOps > 0 && !this.tpm.take(tpmOps)) {
      throw new LimitRefusal('TPM operation budget exhausted; retry later');
    }
    return this.semaphore.acquire().catch((err: Error) => {
      throw new LimitRefusal(err.message);
    });
  }
}
