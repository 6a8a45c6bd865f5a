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

/**
 * A token bucket per peer address and one per network (/24, /64): a misbehaving node cannot starve the others, and
 * many addresses of one network share a bound bigger than one address's, not one each.
 */
export class PeerRateLimiter {
  readonly #buckets = new Map<string, { tokens: number; updated: number }>();
  readonly burstPerPrefix: number;
  readonly perPrefixPerSecond: number;

  constructor(
    readonly burst: number,
    readonly perSecond: number,
    private readonly now: () => number = Date.now,
    prefix: { burst?: number; perSecond?: number } = {},
  ) {
    this.burstPerPrefix = prefix.burst ?? burst * PREFIX_FACTOR;
    this.perPrefixPerSecond = prefix.perSecond ?? perSecond * PREFIX_FACTOR;
  }

  allow(peer: string): boolean {
    const t = this.now();
    const net = peerPrefix(peer);
    const own = this.#refill(peer, this.burst, this.perSecond, t);
    const shared = net === peer ? own : this.#refill(net, this.burstPerPrefix, this.perPrefixPerSecond, t);
    if (this.#buckets.size > 10_000) this.#evict(t);
    if (own.tokens < 1 || shared.tokens < 1) return false;
    own.tokens -= 1;
    if (shared !== own) shared.tokens -= 1;
    return true;
  }

  #refill(key: string, burst: number, perSecond: number, t: number) {
    const bucket = this.#buckets.get(key) ?? { tokens: burst, updated: t };
    bucket.tokens = Math.min(burst, bucket.tokens + ((t - bucket.updated) / 1000) * perSecond);
    bucket.updated = t;
    this.#buckets.set(key, bucket);
    return bucket;
  }

  #evict(t: number): void {
    for (const [peer, b] of this.#buckets) {
      if (t - b.updated > 60_000) this.#buckets.delete(peer);
    }
  }
}

/** A network's bucket allows this many times one address's (burst and rate), unless configured. */
const PREFIX_FACTOR = 4;

/**
 * The network an address is bucketed with: its /24 (IPv4, also IPv4-mapped IPv6) or its /64 (IPv6); anything
 * else (a unix socket) is its own.
 */
export function peerPrefix(host: string): string {
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.\d{1,3}$/i.exec(host);
  if (v4) return `${v4[1]}.${v4[2]}.${v4[3]}.0/24`;
  if (!host.includes(':') || host.includes('/')) return host;
  const [head = '', tail] = host.toLowerCase().split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array.from({ length: 8 - left.length - right.length }, () => '0'), ...right];
  if (groups.length !== 8) return host;
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
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
  /** One /24 or /64 network's bucket (default 4× one address's) */
  burstPerPrefix?: number;
  perPrefixPerSecond?: number;
  maxConcurrent: number;
  maxQueued: number;
  /** TPM operations (quote, credential activation) per second all callers share, and their burst */
  tpmOpsPerSecond: number;
  tpmOpsBurst: number;
  /**
   * The share of the TPM budget kept for vouched-for callers (an address that passed ProveOwner or that an
   * admitted EK joined from): a flood from many addresses empties the rest, never this.
   */
  tpmReservedShare: number;
}

export const DEFAULT_CALL_LIMITS: CallLimitsOptions = {
  burstPerPeer: 10,
  perPeerPerSecond: 2,
  maxConcurrent: 64,
  maxQueued: 1024,
  tpmOpsPerSecond: 200,
  tpmOpsBurst: 400,
  tpmReservedShare: 0.25,
};

/** Vouched-for addresses are remembered this long (a joining node's calls span minutes, not hours). */
const VOUCH_TTL_MS = 30 * 60_000;
const MAX_VOUCHED = 10_000;

/**
 * What every attested-TLS call of a node passes before it may cost anything: the per-peer and per-network token
 * buckets, the TPM operation budget (with its reserved share), and the global concurrency bound — one instance per
 * process, shared by the node's port (Identify/Attest, init) and the JoinService's (Identify/Attest, tickets),
 * since both reach the same TPM.
 */
export class CallLimits {
  readonly rate: PeerRateLimiter;
  readonly semaphore: Semaphore;
  readonly tpm: TokenBucket;
  /** The TPM budget only vouched-for callers may draw on once `tpm` is empty. */
  readonly tpmReserved: TokenBucket | undefined;
  readonly #vouched = new Map<string, number>();
  readonly #now: () => number;

  constructor(options: Partial<CallLimitsOptions> = {}, now: () => number = Date.now) {
    const o = { ...DEFAULT_CALL_LIMITS, ...options };
    if (!(o.tpmReservedShare >= 0 && o.tpmReservedShare < 1))
      throw new RangeError(`tpmReservedShare: expected a share in [0, 1), got ${o.tpmReservedShare}`);
    this.#now = now;
    this.rate = new PeerRateLimiter(o.burstPerPeer, o.perPeerPerSecond, now, {
      ...(o.burstPerPrefix !== undefined ? { burst: o.burstPerPrefix } : {}),
      ...(o.perPrefixPerSecond !== undefined ? { perSecond: o.perPrefixPerSecond } : {}),
    });
    this.semaphore = new Semaphore(o.maxConcurrent, o.maxQueued);
    const share = o.tpmReservedShare;
    this.tpm = new TokenBucket(o.tpmOpsBurst * (1 - share), o.tpmOpsPerSecond * (1 - share), now);
    this.tpmReserved =
      share > 0 ? new TokenBucket(o.tpmOpsBurst * share, o.tpmOpsPerSecond * share, now) : undefined;
  }

  /** Marks the address of `peer` as one the reserved TPM share serves (ProveOwner passed, an EK admitted). */
  vouch(peer: string): void {
    const host = peerHost(peer);
    this.#vouched.delete(host);
    this.#vouched.set(host, this.#now() + VOUCH_TTL_MS);
    // oldest first: the map keeps insertion order
    for (const key of this.#vouched.keys()) {
      if (this.#vouched.size <= MAX_VOUCHED) break;
      this.#vouched.delete(key);
    }
  }

  #isVouched(host: string): boolean {
    const until = this.#vouched.get(host);
    if (until === undefined) return false;
    if (until >= this.#now()) return true;
    this.#vouched.delete(host);
    return false;
  }

  /**
   * Admits one call from `peer` that costs `tpmOps` TPM operations: resolves with the release of its concurrency
   * slot, or rejects with a LimitRefusal before anything ran.
   */
  async admit(peer: string, tpmOps: number): Promise<() => void> {
    const host = peerHost(peer);
    if (!this.rate.allow(host)) throw new LimitRefusal('too many requests from this address or its network');
    if (
      tpmOps > 0 &&
      !this.tpm.take(tpmOps) &&
      !(this.tpmReserved && this.#isVouched(host) && this.tpmReserved.take(tpmOps))
    ) {
      throw new LimitRefusal('TPM operation budget exhausted; retry later');
    }
    return this.semaphore.acquire().catch((err: Error) => {
      throw new LimitRefusal(err.message);
    });
  }
}
