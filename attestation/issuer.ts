import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AttestationDocument, AttesterIdentity, Challenge } from '../gen/proto/attestation.js';
import { parseTpmsAttest, TPM_ALG } from './tpm-structures.js';
import { DOCUMENT_VERSION, PCR_COUNT } from './validator.js';

/** Where Linux exposes the firmware's TCG event log. */
export const DEFAULT_EVENT_LOG_PATH = '/sys/kernel/security/tpm0/binary_bios_measurements';

type MaybePromise<T> = T | Promise<T>;

/** The parts of the TPM binding (native/tpm) the issuer uses; sync or async implementations both fit. */
export interface IssuerTpm {
  readPcrs(indices?: number[]): MaybePromise<Map<number, Buffer>>;
  quote(
    ak: IssuerAk,
    pcrs: number[],
    qualifyingData: Buffer,
  ): MaybePromise<{ attest: Buffer; signature: Buffer }>;
  createAk(algorithm: 'ecc' | 'rsa'): MaybePromise<IssuerAk>;
  readEndorsementKey(): MaybePromise<IssuerEk>;
  activateCredential(
    ak: IssuerAk,
    ek: IssuerEk,
    credentialBlob: Buffer,
    encryptedSecret: Buffer,
  ): MaybePromise<Buffer>;
  flush?(handle: number): MaybePromise<void>;
}
export interface IssuerAk {
  handle: number;
  public: Buffer;
  name: Buffer;
}
export interface IssuerEk {
  handle: number;
  public: Buffer;
  certificate: Buffer | null;
}

export interface IssuerOptions {
  tpm: IssuerTpm;
  /** e.g. 'qemu-vtpm' */
  variant: string;
  /** boot event log; defaults to the kernel's securityfs file. A missing file gives an empty event_log. */
  eventLogPath?: string;
  /** AK key type; ECC P-256 by default (fast to create and verify) */
  akAlgorithm?: 'ecc' | 'rsa';
}

export interface Issuer {
  /** Who this attester is: send to the verifier so it can build a challenge. */
  identity(): AttesterIdentity;
  /** Answers a challenge: activates the credential, quotes PCRs 0–23 over SHA-256(userData ‖ nonce). */
  attest(challenge: Challenge, userData: Buffer): Promise<AttestationDocument>;
  /** Flushes the AK (the TPM itself stays open; its owner closes it). */
  close(): Promise<void>;
}

const ALL_PCRS = Array.from({ length: PCR_COUNT }, (_, i) => i);

async function readEventLog(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // No TPM event log exposed (no securityfs, no TPM driver, or a VM without a log): attest without one.
    if (code === 'ENOENT' || code === 'ENOTDIR') return Buffer.alloc(0);
    throw new Error(`reading event log ${path}: ${(err as Error).message}`);
  }
}

/** SHA-256 over the values in the order the quote's selection lists them: what pcrDigest must equal. */
function digestInQuoteOrder(attest: Buffer, pcrs: Map<number, Buffer>): { quoted: Buffer; computed: Buffer } {
  const parsed = parseTpmsAttest(attest);
  if (!parsed.quote) throw new Error('TPM quote: TPMS_ATTEST is not a quote');
  const h = createHash('sha256');
  for (const sel of parsed.quote.pcrSelect) {
    if (sel.hashAlg !== TPM_ALG.SHA256) throw new Error('TPM quote: unexpected PCR bank in selection');
    for (const i of sel.pcrs) {
      const v = pcrs.get(i);
      if (!v) throw new Error(`TPM quote: PCR ${i} quoted but not read`);
      h.update(v);
    }
  }
  return { quoted: parsed.quote.pcrDigest, computed: h.digest() };
}

/**
 * Creates the node-side issuer: reads the EK (and its certificate), creates one AK for the issuer's lifetime.
 * The TPM object is shared; the caller serialises nothing, since the binding queues calls per context.
 */
export async function createIssuer(options: IssuerOptions): Promise<Issuer> {
  const { tpm, variant } = options;
  const eventLogPath = options.eventLogPath ?? DEFAULT_EVENT_LOG_PATH;
  const ek = await tpm.readEndorsementKey();
  const ak = await tpm.createAk(options.akAlgorithm ?? 'ecc');
  let closed = false;
  const identity: AttesterIdentity = {
    variant,
    akPublic: Buffer.from(ak.public),
    ekCertificate: ek.certificate ? Buffer.from(ek.certificate) : Buffer.alloc(0),
    ekPublic: Buffer.from(ek.public),
  };

  async function quoteConsistently(qualifyingData: Buffer) {
    // A PCR can be extended between PCR_Read and Quote; the quote's own digest tells, so retry once.
    for (let attempt = 0; ; attempt++) {
      const pcrs = await tpm.readPcrs(ALL_PCRS);
      const quote = await tpm.quote(ak, ALL_PCRS, qualifyingData);
      const { quoted, computed } = digestInQuoteOrder(quote.attest, pcrs);
      if (quoted.equals(computed)) return { pcrs, quote };
      if (attempt >= 1) {
        throw new Error('TPM quote: PCRs changed between PCR_Read and Quote twice in a row; try again later');
      }
    }
  }

  return {
    identity: () => ({
      variant: identity.variant,
      akPublic: Buffer.from(identity.akPublic),
      ekCertificate: Buffer.from(identity.ekCertificate),
      ekPublic: Buffer.from(identity.ekPublic),
    }),

    async attest(challenge, userData) {
      if (closed) throw new Error('attestation issuer: closed');
      if (challenge.nonce.length < 16 || challenge.nonce.length > 64) {
        throw new RangeError(`challenge nonce: expected 16-64 bytes, got ${challenge.nonce.length}`);
      }
      const credentialSecret = await tpm.activateCredential(
        ak,
        ek,
        challenge.credentialBlob,
        challenge.encryptedSecret,
      );
      const qualifyingData = createHash('sha256').update(userData).update(challenge.nonce).digest();
      const { pcrs, quote } = await quoteConsistently(qualifyingData);
      const eventLog = await readEventLog(eventLogPath);
      const pcrRecord: Record<number, Buffer> = {};
      for (const [i, v] of pcrs) pcrRecord[i] = v;
      return {
        version: DOCUMENT_VERSION,
        variant,
        akPublic: identity.akPublic,
        quote: quote.attest,
        signature: quote.signature,
        pcrs: pcrRecord,
        eventLog,
        ekCertificate: identity.ekCertificate,
        ekPublic: identity.ekPublic,
        credentialSecret,
        userData: Buffer.from(userData),
      };
    },

    async close() {
      if (closed) return;
      closed = true;
      await tpm.flush?.(ak.handle);
    },
  };
}
