import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
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

export interface SignedRecord {
  record: AdmissionRecord;
  /** Ed25519 over SHA-256 of the record's canonical JSON. */
  signature: string;
}

const GENESIS = '0'.repeat(64);

function digest(record: AdmissionRecord): Buffer {
  return createHash('sha256').update(JSON.stringify(record)).digest();
}

/**
 * An append-only, hash-chained, signed journal of admission decisions. Each record names the hash of its
 * predecessor and is signed with the JoinService's audit key, so removing, reordering or editing a line breaks
 * verification. The public key sits beside the log for operators.
 */
export class AuditLog {
  #seq = 0;
  #prev = GENESIS;
  #queue: Promise<void> = Promise.resolve();

  private constructor(
    readonly path: string,
    private readonly key: KeyObject,
    readonly publicKeyPem: string,
  ) {}

  static async open(dir: string): Promise<AuditLog> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const keyPath = join(dir, 'audit-key.pem');
    let key: KeyObject;
    try {
      key = createPrivateKey(await readFile(keyPath, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      key = generateKeyPairSync('ed25519').privateKey;
      await writeFileAtomic(keyPath, key.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
    }
    const publicKeyPem = createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string;
    await writeFileAtomic(join(dir, 'audit-key.pub.pem'), publicKeyPem);
    const log = new AuditLog(join(dir, 'admissions.log'), key, publicKeyPem);
    const existing = await readAuditLog(log.path, publicKeyPem);
    const last = existing.at(-1);
    if (last) {
      log.#seq = last.record.seq;
      log.#prev = digest(last.record).toString('hex');
    }
    return log;
  }

  /** Appends a decision; appends are serialized so the chain stays linear under concurrent joins. */
  append(entry: Omit<AdmissionRecord, 'seq' | 'time' | 'prev'>): Promise<void> {
    const run = this.#queue.then(async () => {
      const record: AdmissionRecord = {
        seq: this.#seq + 1,
        time: new Date().toISOString(),
        ...entry,
        prev: this.#prev,
      };
      const signature = sign(null, digest(record), this.key).toString('base64');
      await mkdir(dirname(this.path), { recursive: true });
      await appendFile(this.path, `${JSON.stringify({ record, signature } satisfies SignedRecord)}\n`, {
        mode: 0o600,
      });
      this.#seq = record.seq;
      this.#prev = digest(record).toString('hex');
    });
    this.#queue = run.catch(() => {});
    return run;
  }
}

/** Reads and verifies a whole audit log; throws naming the first line that breaks the chain or its signature. */
export async function readAuditLog(path: string, publicKeyPem: string): Promise<SignedRecord[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const key = createPublicKey(publicKeyPem);
  const out: SignedRecord[] = [];
  let prev = GENESIS;
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
      if (entry.record.prev !== prev || entry.record.seq !== i + 1) {
        throw new Error(`${path}: line ${i + 1}: chain broken (record removed, reordered or edited)`);
      }
      if (!verify(null, digest(entry.record), key, Buffer.from(entry.signature, 'base64'))) {
        throw new Error(`${path}: line ${i + 1}: bad signature`);
      }
      prev = digest(entry.record).toString('hex');
      out.push(entry);
    });
  return out;
}
