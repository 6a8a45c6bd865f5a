// The Tpm object: argument checks first, then one serialized ESYS operation per call.
import { MAX_QUALIFYING_DATA } from './constants.js';
import { EsysContext } from './context.js';
import { activateCredential } from './credential.js';
import { type EndorsementKey, readEndorsementKey } from './ek.js';
import { type AttestationKey, createAk, readPublic } from './keys.js';
import {
  ALL_PCRS,
  assertDigest,
  assertEventData,
  assertPcrIndex,
  extendPcr,
  pcrEvent,
  pcrList,
  readPcrs,
} from './pcr.js';
import { type Quote, quote } from './quote.js';
import { getRandom, MAX_RANDOM_BYTES } from './random.js';
import type { AkAlgorithm } from './templates.js';

export const DEFAULT_TCTI = 'device:/dev/tpmrm0';

export interface Tpm {
  readonly tcti: string;
  getRandom(bytes: number): Promise<Buffer>;
  /** SHA-256 bank; default PCRs 0–23. */
  readPcrs(indices?: readonly number[]): Promise<Map<number, Buffer>>;
  /** `digest` must be a 32-byte SHA-256 digest. */
  extendPcr(index: number, digest: Buffer): Promise<void>;
  /** TPM2_PCR_Event: the TPM hashes `data` (≤1024 bytes) and extends the result. */
  pcrEvent(index: number, data: Buffer): Promise<void>;
  /** Restricted signing primary under the endorsement hierarchy: the same key on every boot. */
  createAk(algorithm?: AkAlgorithm): Promise<AttestationKey>;
  readPublic(handle: number): Promise<{ public: Buffer; name: Buffer }>;
  /** `qualifyingData` ≤ 64 bytes. */
  quote(ak: AttestationKey, pcrs: readonly number[], qualifyingData: Buffer): Promise<Quote>;
  /** RSA EK at 0x81010001 when present, else created from the TCG template and flushed on close. */
  readEndorsementKey(): Promise<EndorsementKey>;
  /** TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET wire bytes, size prefixes included. */
  activateCredential(
    ak: AttestationKey,
    ek: EndorsementKey,
    credentialBlob: Buffer,
    encryptedSecret: Buffer,
  ): Promise<Buffer>;
  flush(handle: number): Promise<void>;
  /** Flushes everything still loaded, finalizes ESYS and the TCTI. */
  close(): Promise<void>;
}

function assertHandle(operation: string, name: string, handle: unknown): asserts handle is number {
  if (typeof handle !== 'number' || !Number.isInteger(handle) || handle < 0 || handle > 0xffffffff) {
    throw new TypeError(
      `${operation}: ${name} must be an ESYS_TR (unsigned 32-bit integer), got ${String(handle)}`,
    );
  }
}

function assertBuffer(operation: string, name: string, value: unknown): asserts value is Buffer {
  if (!Buffer.isBuffer(value)) throw new TypeError(`${operation}: ${name} must be a Buffer`);
}

class EsysTpm implements Tpm {
  constructor(private readonly c: EsysContext) {}

  get tcti(): string {
    return this.c.tcti;
  }

  async getRandom(bytes: number): Promise<Buffer> {
    if (!Number.isInteger(bytes) || bytes < 0 || bytes > MAX_RANDOM_BYTES) {
      throw new RangeError(`getRandom: bytes must be an integer 0–${MAX_RANDOM_BYTES}, got ${String(bytes)}`);
    }
    return this.c.run('getRandom', (ctx) => getRandom(this.c, ctx, bytes));
  }

  async readPcrs(indices: readonly number[] = ALL_PCRS): Promise<Map<number, Buffer>> {
    const list = pcrList('readPcrs', 'indices', indices);
    return this.c.run('readPcrs', (ctx) => readPcrs(this.c, ctx, list));
  }

  async extendPcr(index: number, digest: Buffer): Promise<void> {
    assertPcrIndex('extendPcr', 'index', index);
    assertDigest('extendPcr', 'digest', digest);
    return this.c.run('extendPcr', (ctx) => extendPcr(this.c, ctx, index, digest));
  }

  async pcrEvent(index: number, data: Buffer): Promise<void> {
    assertPcrIndex('pcrEvent', 'index', index);
    assertEventData('pcrEvent', 'data', data);
    return this.c.run('pcrEvent', (ctx) => pcrEvent(this.c, ctx, index, data));
  }

  async createAk(algorithm: AkAlgorithm = 'ecc'): Promise<AttestationKey> {
    if (algorithm !== 'ecc' && algorithm !== 'rsa') {
      throw new TypeError(`createAk: algorithm must be 'ecc' or 'rsa', got ${String(algorithm)}`);
    }
    return this.c.run('createAk', (ctx) => createAk(this.c, ctx, algorithm));
  }

  async readPublic(handle: number): Promise<{ public: Buffer; name: Buffer }> {
    assertHandle('readPublic', 'handle', handle);
    return this.c.run('readPublic', (ctx) => readPublic(this.c, ctx, handle));
  }

  async quote(ak: AttestationKey, pcrs: readonly number[], qualifyingData: Buffer): Promise<Quote> {
    assertHandle('quote', 'ak.handle', ak?.handle);
    const list = pcrList('quote', 'pcrs', pcrs);
    assertBuffer('quote', 'qualifyingData', qualifyingData);
    if (qualifyingData.length > MAX_QUALIFYING_DATA) {
      throw new RangeError(
        `quote: qualifyingData must be at most ${MAX_QUALIFYING_DATA} bytes, got ${qualifyingData.length}`,
      );
    }
    return this.c.run('quote', (ctx) => quote(this.c, ctx, ak.handle, list, qualifyingData));
  }

  async readEndorsementKey(): Promise<EndorsementKey> {
    return this.c.run('readEndorsementKey', (ctx) => readEndorsementKey(this.c, ctx));
  }

  async activateCredential(
    ak: AttestationKey,
    ek: EndorsementKey,
    credentialBlob: Buffer,
    encryptedSecret: Buffer,
  ): Promise<Buffer> {
    assertHandle('activateCredential', 'ak.handle', ak?.handle);
    assertHandle('activateCredential', 'ek.handle', ek?.handle);
    assertBuffer('activateCredential', 'credentialBlob', credentialBlob);
    assertBuffer('activateCredential', 'encryptedSecret', encryptedSecret);
    return this.c.run('activateCredential', (ctx) =>
      activateCredential(this.c, ctx, ak.handle, ek.handle, credentialBlob, encryptedSecret),
    );
  }

  async flush(handle: number): Promise<void> {
    assertHandle('flush', 'handle', handle);
    return this.c.run('flush', () => this.c.flush(handle));
  }

  close(): Promise<void> {
    return this.c.close();
  }
}

export interface OpenTpmOptions {
  /** Flush transient objects and sessions left loaded by an earlier process or a lost context (raw TPMs). */
  flushStale?: boolean;
}

/** Opens the TPM behind a TCTI string (default `device:/dev/tpmrm0`) and runs Startup(CLEAR) if needed. */
export async function openTpm(tcti: string = DEFAULT_TCTI, options: OpenTpmOptions = {}): Promise<Tpm> {
  if (typeof tcti !== 'string' || tcti.trim() === '' || tcti.includes('\0')) {
    throw new TypeError(
      `openTpm: tcti must be a TCTI string such as "${DEFAULT_TCTI}", got ${JSON.stringify(tcti)}`,
    );
  }
  // A resource manager (/dev/tpmrm*) gives every connection a clean slate: nothing of another context to flush.
  if (options.flushStale && !/^device:.*tpmrm/.test(tcti)) {
    // On a context of its own, best effort: probing absent handles fails by design, and whatever state those
    // failures leave in ESAPI must not reach the context the caller gets.
    const probe = await EsysContext.open(tcti);
    try {
      await probe.run('flushStale', () => probe.flushStale());
    } catch {
      // Nothing flushed: a raw TPM may run short of object slots later, which a reopen then reports.
    } finally {
      await probe.close().catch(() => {});
    }
  }
  const context = await EsysContext.open(tcti);
  return new EsysTpm(context);
}
