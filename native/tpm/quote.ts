// TPM2_Quote with the AK's own scheme over a SHA-256 PCR selection.
import { ALG, ESYS_TR } from './constants.js';
import type { EsysContext } from './context.js';
import { fn, type Pointer } from './library.js';
import { toStruct, toWire, tpm2bContent } from './mu.js';
import { sha256Selection } from './pcr.js';

export interface Quote {
  /** TPMS_ATTEST wire bytes, exactly as signed. */
  attest: Buffer;
  /** TPMT_SIGNATURE wire bytes. */
  signature: Buffer;
}

// TPM_ALG_NULL: sign with the scheme the key was created with.
const NULL_SCHEME = Buffer.from([(ALG.NULL >> 8) & 0xff, ALG.NULL & 0xff]);

export async function quote(
  c: EsysContext,
  ctx: Pointer,
  akHandle: number,
  pcrs: readonly number[],
  qualifyingData: Buffer,
): Promise<Quote> {
  const data = Buffer.alloc(64);
  qualifyingData.copy(data);
  const quoted: [Pointer] = [null];
  const signature: [Pointer] = [null];
  try {
    await c.esys(
      'quote (Esys_Quote)',
      fn.Esys_Quote,
      ctx,
      akHandle,
      ESYS_TR.PASSWORD,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      { size: qualifyingData.length, buffer: [...data] },
      toStruct('TPMT_SIG_SCHEME', NULL_SCHEME),
      sha256Selection(pcrs),
      quoted,
      signature,
    );
    return {
      attest: Buffer.from(tpm2bContent(toWire('TPM2B_ATTEST', quoted[0]))),
      signature: toWire('TPMT_SIGNATURE', signature[0]),
    };
  } finally {
    c.free(quoted[0], signature[0]);
  }
}
