// TPM2_GetRandom, looped: the TPM returns at most one digest's worth of bytes per call.
import { ESYS_TR } from './constants.js';
import type { EsysContext } from './context.js';
import { decodeStruct, fn, type Pointer, TPM2B_DIGEST } from './library.js';

export const MAX_RANDOM_BYTES = 65536;

export async function getRandom(c: EsysContext, ctx: Pointer, bytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let have = 0;
  while (have < bytes) {
    const out: [Pointer] = [null];
    try {
      await c.esys(
        'getRandom (Esys_GetRandom)',
        fn.Esys_GetRandom,
        ctx,
        ESYS_TR.NONE,
        ESYS_TR.NONE,
        ESYS_TR.NONE,
        Math.min(bytes - have, 64),
        out,
      );
      const d = decodeStruct<{ size: number; buffer: ArrayLike<number> }>(out[0], TPM2B_DIGEST);
      if (d.size === 0) throw new Error('getRandom: the TPM returned no bytes');
      const part = Buffer.from(Uint8Array.from(d.buffer).subarray(0, d.size));
      parts.push(part);
      have += part.length;
    } finally {
      c.free(out[0]);
    }
  }
  return Buffer.concat(parts).subarray(0, bytes);
}
