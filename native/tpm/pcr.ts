// SHA-256 PCR bank: read (any selection, ≤8 per TPM call), extend, event.
import { ALG, ESYS_TR, MAX_EVENT_DATA, PCR_COUNT, SHA256_SIZE } from './constants.js';
import type { EsysContext } from './context.js';
import { decodeStruct, fn, type Pointer, TPML_DIGEST, TPML_PCR_SELECTION } from './library.js';

export const ALL_PCRS: readonly number[] = Array.from({ length: PCR_COUNT }, (_, i) => i);

export function assertPcrIndex(operation: string, name: string, index: unknown): asserts index is number {
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= PCR_COUNT) {
    throw new RangeError(
      `${operation}: ${name} must be an integer PCR index 0–${PCR_COUNT - 1}, got ${String(index)}`,
    );
  }
}

/** Validates and de-duplicates a PCR list, ascending. */
export function pcrList(operation: string, name: string, indices: readonly number[]): number[] {
  if (!Array.isArray(indices)) throw new TypeError(`${operation}: ${name} must be an array of PCR indices`);
  if (indices.length === 0) throw new RangeError(`${operation}: ${name} must name at least one PCR`);
  indices.forEach((i, n) => {
    assertPcrIndex(operation, `${name}[${n}]`, i);
  });
  return [...new Set(indices)].sort((a, b) => a - b);
}

function bitmap(indices: readonly number[]): number[] {
  const bytes = [0, 0, 0, 0];
  for (const i of indices) bytes[i >> 3] = (bytes[i >> 3] ?? 0) | (1 << (i & 7));
  return bytes;
}

const EMPTY_SELECTION = { hash: 0, sizeofSelect: 0, pcrSelect: [0, 0, 0, 0] };

/** A TPML_PCR_SELECTION for the SHA-256 bank, padded to its 16 fixed entries. */
export function sha256Selection(indices: readonly number[]) {
  const pcrSelections: { hash: number; sizeofSelect: number; pcrSelect: number[] }[] = [
    { hash: ALG.SHA256, sizeofSelect: 3, pcrSelect: bitmap(indices) },
  ];
  while (pcrSelections.length < 16) pcrSelections.push(EMPTY_SELECTION);
  return { count: indices.length === 0 ? 0 : 1, pcrSelections };
}

interface DecodedSelection {
  count: number;
  pcrSelections: { hash: number; sizeofSelect: number; pcrSelect: ArrayLike<number> }[];
}
interface DecodedDigests {
  count: number;
  digests: { size: number; buffer: ArrayLike<number> }[];
}

export async function readPcrs(
  c: EsysContext,
  ctx: Pointer,
  indices: readonly number[],
): Promise<Map<number, Buffer>> {
  const result = new Map<number, Buffer>();
  let remaining = [...indices];
  while (remaining.length > 0) {
    const counter: [number] = [0];
    const selOut: [Pointer] = [null];
    const values: [Pointer] = [null];
    try {
      await c.esys(
        'readPcrs (Esys_PCR_Read)',
        fn.Esys_PCR_Read,
        ctx,
        ESYS_TR.NONE,
        ESYS_TR.NONE,
        ESYS_TR.NONE,
        sha256Selection(remaining),
        counter,
        selOut,
        values,
      );
      const sel = decodeStruct<DecodedSelection>(selOut[0], TPML_PCR_SELECTION);
      const digests = decodeStruct<DecodedDigests>(values[0], TPML_DIGEST);
      // The TPM chooses which PCRs it answers (at most 8); map digests through its selection, in bit order.
      const answered: number[] = [];
      for (const s of sel.pcrSelections.slice(0, sel.count)) {
        if (s.hash !== ALG.SHA256) continue;
        for (let byte = 0; byte < s.sizeofSelect; byte++) {
          for (let bit = 0; bit < 8; bit++)
            if (((s.pcrSelect[byte] ?? 0) >> bit) & 1) answered.push(byte * 8 + bit);
        }
      }
      if (answered.length === 0 || answered.length !== digests.count) {
        throw new Error(
          `readPcrs: the TPM answered ${digests.count} digests for ${answered.length} selected PCRs (is the SHA-256 bank active?)`,
        );
      }
      answered.forEach((pcr, i) => {
        const d = digests.digests[i];
        if (d) result.set(pcr, Buffer.from(Uint8Array.from(d.buffer).subarray(0, d.size)));
      });
      remaining = remaining.filter((i) => !result.has(i));
    } finally {
      c.free(selOut[0], values[0]);
    }
  }
  return new Map(indices.map((i) => [i, result.get(i) as Buffer]));
}

export async function extendPcr(c: EsysContext, ctx: Pointer, index: number, digest: Buffer): Promise<void> {
  const digestArray = Buffer.alloc(64);
  digest.copy(digestArray);
  const digests: { hashAlg: number; digest: number[] }[] = [
    { hashAlg: ALG.SHA256, digest: [...digestArray] },
  ];
  while (digests.length < 16) digests.push({ hashAlg: 0, digest: new Array<number>(64).fill(0) });
  await c.esys(
    'extendPcr (Esys_PCR_Extend)',
    fn.Esys_PCR_Extend,
    ctx,
    index,
    ESYS_TR.PASSWORD,
    ESYS_TR.NONE,
    ESYS_TR.NONE,
    { count: 1, digests },
  );
}

export async function pcrEvent(c: EsysContext, ctx: Pointer, index: number, data: Buffer): Promise<void> {
  const buffer = Buffer.alloc(MAX_EVENT_DATA);
  data.copy(buffer);
  const out: [Pointer] = [null];
  try {
    await c.esys(
      'pcrEvent (Esys_PCR_Event)',
      fn.Esys_PCR_Event,
      ctx,
      index,
      ESYS_TR.PASSWORD,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      { size: data.length, buffer: [...buffer] },
      out,
    );
  } finally {
    c.free(out[0]);
  }
}

export function assertDigest(operation: string, name: string, digest: unknown): asserts digest is Buffer {
  if (!Buffer.isBuffer(digest)) throw new TypeError(`${operation}: ${name} must be a Buffer`);
  if (digest.length !== SHA256_SIZE) {
    throw new RangeError(
      `${operation}: ${name} must be a ${SHA256_SIZE}-byte SHA-256 digest, got ${digest.length} bytes`,
    );
  }
}

export function assertEventData(operation: string, name: string, data: unknown): asserts data is Buffer {
  if (!Buffer.isBuffer(data)) throw new TypeError(`${operation}: ${name} must be a Buffer`);
  if (data.length > MAX_EVENT_DATA) {
    throw new RangeError(`${operation}: ${name} must be at most ${MAX_EVENT_DATA} bytes, got ${data.length}`);
  }
}
