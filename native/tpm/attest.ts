// Parsing of TPMS_ATTEST (quote) wire bytes, as signed by the AK.
import { TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE } from './constants.js';

export interface QuoteInfo {
  magic: number;
  type: number;
  qualifiedSigner: Buffer;
  extraData: Buffer;
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
  firmwareVersion: bigint;
  /** hash algorithm -> selected PCR indices */
  pcrSelections: { hash: number; pcrs: number[] }[];
  pcrDigest: Buffer;
}

class Reader {
  private offset = 0;
  constructor(private readonly buf: Buffer) {}
  need(n: number, what: string): void {
    if (this.offset + n > this.buf.length)
      throw new RangeError(`TPMS_ATTEST: truncated at ${what} (offset ${this.offset})`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf.readUInt8(this.offset++);
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  u64(what: string): bigint {
    this.need(8, what);
    const v = this.buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    return v;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return Buffer.from(v);
  }
  tpm2b(what: string): Buffer {
    return this.bytes(this.u16(what), what);
  }
  done(): boolean {
    return this.offset === this.buf.length;
  }
}

/** Parses a quote's TPMS_ATTEST; throws when it is not a TPM-generated quote. */
export function parseQuoteAttest(attest: Buffer): QuoteInfo {
  const r = new Reader(attest);
  const magic = r.u32('magic');
  if (magic !== TPM_GENERATED_VALUE)
    throw new TypeError(`TPMS_ATTEST: magic 0x${magic.toString(16)} is not TPM_GENERATED_VALUE`);
  const type = r.u16('type');
  if (type !== TPM_ST_ATTEST_QUOTE)
    throw new TypeError(`TPMS_ATTEST: type 0x${type.toString(16)} is not TPM_ST_ATTEST_QUOTE`);
  const qualifiedSigner = r.tpm2b('qualifiedSigner');
  const extraData = r.tpm2b('extraData');
  const clock = r.u64('clock');
  const resetCount = r.u32('resetCount');
  const restartCount = r.u32('restartCount');
  const safe = r.u8('safe') !== 0;
  const firmwareVersion = r.u64('firmwareVersion');
  const count = r.u32('pcrSelect.count');
  const pcrSelections: { hash: number; pcrs: number[] }[] = [];
  for (let i = 0; i < count; i++) {
    const hash = r.u16('pcrSelect.hash');
    const size = r.u8('pcrSelect.sizeofSelect');
    const bits = r.bytes(size, 'pcrSelect.pcrSelect');
    const pcrs: number[] = [];
    for (let b = 0; b < size * 8; b++) if (((bits[b >> 3] ?? 0) >> (b & 7)) & 1) pcrs.push(b);
    pcrSelections.push({ hash, pcrs });
  }
  const pcrDigest = r.tpm2b('pcrDigest');
  if (!r.done()) throw new RangeError('TPMS_ATTEST: trailing bytes after pcrDigest');
  return {
    magic,
    type,
    qualifiedSigner,
    extraData,
    clock,
    resetCount,
    restartCount,
    safe,
    firmwareVersion,
    pcrSelections,
    pcrDigest,
  };
}
