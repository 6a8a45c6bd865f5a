import { ParseError } from './errors.js';

export interface ByteReaderOptions {
  /** TPM wire structures are big-endian; the TCG event log is little-endian. */
  littleEndian?: boolean;
  /** Where `buf` starts in the whole input, so offsets in errors are offsets of the input. */
  base?: number;
  /** Appended to "needs N bytes" errors, e.g. " (truncated log)". */
  truncatedHint?: string;
}

/** A cursor over bytes for the TPM structure and event-log parsers; every read names its field for the error. */
export class ByteReader {
  offset = 0;
  readonly #le: boolean;
  readonly #base: number;
  readonly #hint: string;

  constructor(
    readonly buf: Buffer,
    readonly structure: string,
    options: ByteReaderOptions = {},
  ) {
    this.#le = options.littleEndian ?? false;
    this.#base = options.base ?? 0;
    this.#hint = options.truncatedHint ?? '';
  }

  private need(n: number, field: string): void {
    if (this.offset + n > this.buf.length) {
      throw new ParseError(
        this.structure,
        this.#base + this.offset,
        `${field}: needs ${n} bytes, only ${this.buf.length - this.offset} left${this.#hint}`,
      );
    }
  }
  u8(field: string): number {
    this.need(1, field);
    return this.buf.readUInt8(this.offset++);
  }
  u16(field: string): number {
    this.need(2, field);
    const v = this.#le ? this.buf.readUInt16LE(this.offset) : this.buf.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  u32(field: string): number {
    this.need(4, field);
    const v = this.#le ? this.buf.readUInt32LE(this.offset) : this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  u64(field: string): bigint {
    this.need(8, field);
    const v = this.#le ? this.buf.readBigUInt64LE(this.offset) : this.buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    return v;
  }
  bytes(n: number, field: string): Buffer {
    this.need(n, field);
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  /** A TPM2B: u16 size, then that many bytes. */
  tpm2b(field: string): Buffer {
    const size = this.u16(`${field}.size`);
    return this.bytes(size, field);
  }
  /** Fails when bytes are left over: a structure must be consumed exactly. */
  end(): void {
    if (this.offset !== this.buf.length) {
      throw new ParseError(
        this.structure,
        this.#base + this.offset,
        `${this.buf.length - this.offset} unexpected trailing bytes`,
      );
    }
  }
}
