import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file.js';

/** One admission decision as the JoinService made it. */
export interface AdmissionRecord {
  seq: number;
  time: string;
  peer: string;
  nodeName: string;
  akName: string;
  ekCertificateHash: string;
  request: 'join' | 'rejoin';
  verdict: 'admitted' | 'refused';
  reason: string;
  /** SHA-256 over the PCR values the node reported, in index order (empty when attestation failed early). */
  pcrDigest: string;
  prev: string;
}

/**
 * What happened to the log itself: a new segment (rotation, or a fresh chain after a broken one), a torn tail
 * removed. Signed and chained like decisions, so an operator sees every gap the log had to accept.
 */
export interface LogEventRecord {
  seq: number;
  time: string;
  kind: 'segment' | 'repair';
  reason: string;
  prev: string;
}

/**
 * Refusals that came before any challenge (no attestation, no challenge on the connection): anyone who reaches
 * the port can cause them, so they are counted per reason and written as one record per interval, never one
 * line per request an outsider sends.
 */
export interface RefusalSummaryRecord {
  seq: number;
  time: string;
  kind: 'refusals';
  since: string;
  counts: Record<string, number>;
  prev: string;
}

export type AuditRecord = AdmissionRecord | LogEventRecord | RefusalSummaryRecord;

export interface SignedRecord {
  record: AuditRecord;
  /** Ed25519 over SHA-256 of the record's canonical JSON. */
  signature: string;
}

export function isAdmission(record: AuditRecord): record is AdmissionRecord {
  return !('kind' in record);
}

/** An append that did not reach the disk: the decision it records must not take effect. */
export class AuditAppendError extends Error {
  constructor(path: string, cause: unknown) {
    super(`audit log ${path}: append failed: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
    this.name = 'AuditAppendError';
  }
}

export interface AuditLogOptions {
  /** Where the log says what it did to itself (torn tail removed, new segment); the agent's logger. */
  notice?: (level: 'info' | 'warn', message: string) => void;
  /** A segment is rotated once it would grow past this (default 4 MiB). */
  maxSegmentBytes?: number;
  /** Rotated segments kept beside the current one (default 8): the log never holds more than (n+1) segments. */
  maxSegments?: number;
  /** How often counted refusals are written as one summary record (default 60 s). */
  summaryIntervalMs?: number;
  now?: () => Date;
}

const GENESIS = '0'.repeat(64);
const LOG_NAME = 'admissions.log';
const KEY_NAME = 'audit-key.pem';
const PUB_NAME = 'audit-key.pub.pem';
/** Distinct refusal reasons counted per summary; more fold into one bucket so the summary stays small. */
const MAX_REASONS = 32;

function digest(record: AuditRecord): Buffer {
  return createHash('sha256').update(JSON.stringify(record)).digest();
}

type Unsigned<T> = T extends AuditRecord ? Omit<T, 'seq' | 'time' | 'prev'> : never;

/**
 * An append-only, hash-chained, signed journal of admission decisions. Each record names the hash of its
 * predecessor and is signed with the JoinService's audit key, so removing, reordering or editing a line breaks
 * verification. The public key sits beside the log for operators.
 *
 * Faults never stop the JoinService: a torn tail (a crash or a full disk mid-append) is cut off on open, a log
 * that does not verify is set aside and a new signed segment starts saying why, and the log rotates at a size
 * bound. What it never does is pretend: an append that did not reach the disk rejects, and the caller must then
 * refuse the admission it was recording.
 */
export class AuditLog {
  readonly path: string;
  #seq = 0;
  #prev = GENESIS;
  /** Bytes of the current segment known to hold whole, verified records. */
  #size = 0;
  /** Records to write ahead of the next one: why a segment began, what was repaired. */
  #pending: Unsigned<LogEventRecord>[] = [];
  #rotateFirst: string | undefined;
  #keySaved = false;
  #pubSaved = false;
  #queue: Promise<void> = Promise.resolve();
  #counts = new Map<string, number>();
  #countsSince: Date | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #maxSegmentBytes: number;
  readonly #maxSegments: number;
  readonly #summaryIntervalMs: number;
  readonly #now: () => Date;
  readonly #notice: NonNullable<AuditLogOptions['notice']>;

  private constructor(
    readonly dir: string,
    private key: KeyObject,
    public publicKeyPem: string,
    options: AuditLogOptions,
  ) {
    this.path = join(dir, LOG_NAME);
    this.#maxSegmentBytes = options.maxSegmentBytes ?? 4 * 1024 * 1024;
    this.#maxSegments = options.maxSegments ?? 8;
    this.#summaryIntervalMs = options.summaryIntervalMs ?? 60_000;
    this.#now = options.now ?? (() => new Date());
    this.#notice = options.notice ?? (() => {});
  }

  /**
   * Opens (or starts) the log in `dir`. Never throws for what is in the directory: an unreadable key or a log
   * that does not verify is set aside and a new segment begins. Only a directory it cannot create throws.
   */
  static async open(dir: string, options: AuditLogOptions = {}): Promise<AuditLog> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const keyPath = join(dir, KEY_NAME);
    let key: KeyObject | undefined;
    let keyProblem: string | undefined;
    try {
      key = createPrivateKey(await readFile(keyPath, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') keyProblem = messageOf(err);
    }
    const fresh = key === undefined;
    key ??= generateKeyPairSync('ed25519').privateKey;
    const publicKeyPem = createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string;
    const log = new AuditLog(dir, key, publicKeyPem, options);
    if (keyProblem !== undefined) {
      // Records signed by the lost key stay verifiable with the public key kept beside them.
      const stamp = log.#stamp();
      await rename(keyPath, `${keyPath}.unreadable-${stamp}`).catch(() => {});
      await rename(join(dir, PUB_NAME), join(dir, `${PUB_NAME}.${stamp}`)).catch(() => {});
      log.#rotateFirst = `the audit key was unreadable (${keyProblem}); a new key signs from here`;
      log.#notice('warn', `audit log: ${log.#rotateFirst}`);
    } else if (!fresh) {
      log.#keySaved = true;
      log.#pubSaved = (await readFile(join(dir, PUB_NAME), 'utf8').catch(() => '')) === publicKeyPem;
    }
    if (log.#rotateFirst === undefined) await log.#resume();
    // Best effort: a full disk now only delays these writes to the next append, which then fails visibly.
    await log.#enqueue([]).catch(() => {});
    return log;
  }

  /** Continues the current segment: whole records are kept, a torn tail is cut off, a broken one set aside. */
  async #resume(): Promise<void> {
    let text: Buffer;
    try {
      text = await readFile(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.#rotateFirst = `${LOG_NAME} was unreadable (${messageOf(err)})`;
      this.#notice('warn', `audit log: ${this.#rotateFirst}; a new segment begins`);
      return;
    }
    const whole = text.lastIndexOf(0x0a) + 1;
    let parsed: { records: SignedRecord[] };
    try {
      parsed = {
        records: verifyLines(this.path, text.subarray(0, whole).toString('utf8'), this.publicKeyPem),
      };
    } catch (err) {
      this.#rotateFirst = `${LOG_NAME} did not verify (${messageOf(err)})`;
      this.#notice('warn', `audit log: ${this.#rotateFirst}; set aside, a new segment begins`);
      return;
    }
    const last = parsed.records.at(-1)?.record;
    if (last) {
      this.#seq = last.seq;
      this.#prev = digest(last).toString('hex');
    }
    this.#size = whole;
    if (whole < text.length) {
      const torn = text.length - whole;
      try {
        await truncate(this.path, whole);
        this.#pending.push({
          kind: 'repair',
          reason: `removed a torn tail of ${torn} bytes (an append that failed)`,
        });
        this.#notice('warn', `audit log: removed a torn tail of ${torn} bytes (an interrupted append)`);
      } catch (err) {
        this.#rotateFirst = `a torn tail of ${torn} bytes could not be removed (${messageOf(err)})`;
        this.#notice('warn', `audit log: ${this.#rotateFirst}; a new segment begins`);
      }
    }
  }

  /**
   * Appends a decision and resolves once it is on disk (fsync). Rejects with AuditAppendError otherwise: the
   * caller must then refuse the admission. Appends are serialized so the chain stays linear.
   */
  append(entry: Omit<AdmissionRecord, 'seq' | 'time' | 'prev'>): Promise<void> {
    return this.#enqueue([entry]);
  }

  /** Counts a refusal that came before any challenge; written as one summary record per interval. */
  countRefusal(reason: string): void {
    const key = this.#counts.has(reason) || this.#counts.size < MAX_REASONS ? reason : 'other reasons';
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
    this.#countsSince ??= this.#now();
    if (!this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.flushRefusals().catch((err: unknown) => this.#notice('warn', messageOf(err)));
      }, this.#summaryIntervalMs);
      this.#timer.unref();
    }
  }

  /** Writes the counted refusals now (on close, and by the interval timer). */
  flushRefusals(): Promise<void> {
    if (this.#counts.size === 0) return Promise.resolve();
    const counts = Object.fromEntries(this.#counts);
    const since = (this.#countsSince ?? this.#now()).toISOString();
    this.#counts.clear();
    this.#countsSince = undefined;
    return this.#enqueue([{ kind: 'refusals', since, counts }]).catch((err: unknown) => {
      // Not lost: counted again into the next summary.
      for (const [reason, n] of Object.entries(counts))
        this.#counts.set(reason, (this.#counts.get(reason) ?? 0) + n);
      this.#countsSince ??= new Date(since);
      throw err;
    });
  }

  async close(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flushRefusals().catch((err: unknown) => this.#notice('warn', messageOf(err)));
    await this.#queue;
  }

  #enqueue(entries: Unsigned<AuditRecord>[]): Promise<void> {
    const run = this.#queue.then(() => this.#write(entries));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #write(entries: Unsigned<AuditRecord>[]): Promise<void> {
    try {
      if (!this.#keySaved) {
        await writeFileAtomic(
          join(this.dir, KEY_NAME),
          this.key.export({ type: 'pkcs8', format: 'pem' }) as string,
          {
            mode: 0o600,
          },
        );
        this.#keySaved = true;
      }
      if (!this.#pubSaved) {
        await writeFileAtomic(join(this.dir, PUB_NAME), this.publicKeyPem);
        this.#pubSaved = true;
      }
      if (this.#rotateFirst !== undefined) await this.#rotate(this.#rotateFirst, true);
    } catch (err) {
      throw new AuditAppendError(this.path, err);
    }
    if (entries.length === 0 && this.#pending.length === 0) return;
    let { lines, seq, prev } = this.#sign([...this.#pending, ...entries], this.#seq, this.#prev);
    if (this.#size > 0 && this.#size + lines.length > this.#maxSegmentBytes) {
      try {
        await this.#rotate(`${LOG_NAME} reached its size bound (${this.#maxSegmentBytes} bytes)`, false);
      } catch (err) {
        throw new AuditAppendError(this.path, err);
      }
      ({ lines, seq, prev } = this.#sign([...this.#pending, ...entries], this.#seq, this.#prev));
    }
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    try {
      handle = await open(this.path, 'a', 0o600);
      // writeFile loops over short writes: a full disk shows up as ENOSPC, never as a silently shortened record.
      await handle.writeFile(lines);
      await handle.datasync();
    } catch (err) {
      // Cut the torn record off at once, so the next append continues a whole chain.
      if (handle)
        await handle.truncate(this.#size).catch(() => {
          this.#rotateFirst = 'a torn record could not be removed after a failed append';
        });
      throw new AuditAppendError(this.path, err);
    } finally {
      await handle?.close().catch(() => {});
    }
    this.#size += lines.length;
    this.#seq = seq;
    this.#prev = prev;
    this.#pending = [];
  }

  #sign(
    entries: Unsigned<AuditRecord>[],
    seq: number,
    prev: string,
  ): { lines: Buffer; seq: number; prev: string } {
    const out: string[] = [];
    const time = this.#now().toISOString();
    for (const entry of entries) {
      seq += 1;
      const record = { seq, time, ...entry, prev } as AuditRecord;
      const signature = sign(null, digest(record), this.key).toString('base64');
      out.push(`${JSON.stringify({ record, signature } satisfies SignedRecord)}\n`);
      prev = digest(record).toString('hex');
    }
    return { lines: Buffer.from(out.join('')), seq, prev };
  }

  /**
   * Moves the current segment to admissions.log.1 (older ones shift up, the oldest beyond the bound goes) and
   * queues the record that opens the next one. A rotation continues the chain; a break starts a new one.
   */
  async #rotate(reason: string, newChain: boolean): Promise<void> {
    const names = await readdir(this.dir);
    const rotated = names
      .map((n) => /^admissions\.log\.(\d+)$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => b - a);
    for (const n of rotated) {
      if (n >= this.#maxSegments) await rm(join(this.dir, `${LOG_NAME}.${n}`), { force: true });
      else await rename(join(this.dir, `${LOG_NAME}.${n}`), join(this.dir, `${LOG_NAME}.${n + 1}`));
    }
    const exists = await stat(this.path).then(
      () => true,
      () => false,
    );
    if (exists) await rename(this.path, join(this.dir, `${LOG_NAME}.1`));
    if (newChain) {
      this.#seq = 0;
      this.#prev = GENESIS;
      this.#pending = [{ kind: 'segment', reason: `new chain: ${reason}` }];
      this.#notice('warn', `audit log: new signed segment (${reason})`);
    } else {
      this.#pending.unshift({ kind: 'segment', reason: `continued from ${LOG_NAME}.1: ${reason}` });
      this.#notice('info', `audit log: rotated (${reason})`);
    }
    this.#size = 0;
    this.#rotateFirst = undefined;
  }

  #stamp(): string {
    return this.#now().toISOString().replace(/[:.]/g, '-');
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function verifyLines(path: string, text: string, publicKeyPem: string): SignedRecord[] {
  const key = createPublicKey(publicKeyPem);
  const out: SignedRecord[] = [];
  let prev: string | undefined;
  let seq: number | undefined;
  text
    .split('\n')
    .filter((l) => l !== '')
    .forEach((line, i) => {
      let entry: SignedRecord;
      try {
        entry = JSON.parse(line) as SignedRecord;
      } catch {
        throw new Error(`${path}: line ${i + 1}: not JSON`);
      }
      const record = entry.record;
      // A segment opens with GENESIS at seq 1, or with a segment record that continues the previous segment's chain.
      const opensSegment = i === 0 && 'kind' in record && record.kind === 'segment';
      const expectedPrev = prev ?? (opensSegment ? record.prev : GENESIS);
      const expectedSeq = seq === undefined ? (opensSegment ? record.seq : 1) : seq + 1;
      if (record.prev !== expectedPrev || record.seq !== expectedSeq) {
        throw new Error(`${path}: line ${i + 1}: chain broken (record removed, reordered or edited)`);
      }
      if (!verify(null, digest(record), key, Buffer.from(entry.signature, 'base64'))) {
        throw new Error(`${path}: line ${i + 1}: bad signature`);
      }
      prev = digest(record).toString('hex');
      seq = record.seq;
      out.push(entry);
    });
  return out;
}

/** Reads and verifies one segment; throws naming the first line that breaks the chain or its signature. */
export async function readAuditLog(path: string, publicKeyPem: string): Promise<SignedRecord[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return verifyLines(path, text, publicKeyPem);
}

export interface AuditSegment {
  file: string;
  records: SignedRecord[];
  /** Why this segment does not verify (it was set aside for that reason); records are then empty. */
  error?: string;
}

/**
 * Every segment in `dir`, oldest first, each verified on its own; a rotation's opening record must continue the
 * chain of the segment before it. What an operator reads: a broken segment is reported, not hidden.
 */
export async function readAuditTrail(dir: string, publicKeyPem: string): Promise<AuditSegment[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const rotated = names
    .map((n) => /^admissions\.log\.(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a)
    .map((n) => `${LOG_NAME}.${n}`);
  const files = [...rotated, ...(names.includes(LOG_NAME) ? [LOG_NAME] : [])];
  const out: AuditSegment[] = [];
  let lastDigest: string | undefined;
  for (const file of files) {
    try {
      const records = await readAuditLog(join(dir, file), publicKeyPem);
      const first = records[0]?.record;
      if (
        first &&
        'kind' in first &&
        first.kind === 'segment' &&
        first.reason.startsWith('continued') &&
        lastDigest !== undefined &&
        first.prev !== lastDigest
      ) {
        throw new Error(`${file}: line 1: does not continue the segment before it`);
      }
      const last = records.at(-1)?.record;
      lastDigest = last ? digest(last).toString('hex') : lastDigest;
      out.push({ file, records });
    } catch (err) {
      lastDigest = undefined;
      out.push({ file, records: [], error: messageOf(err) });
    }
  }
  return out;
}
