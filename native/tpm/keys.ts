// Primary keys under the endorsement hierarchy (AK, fallback EK), public areas and names.
import { createHash } from 'node:crypto';
import { ALG, ESYS_TR } from './constants.js';
import type { EsysContext } from './context.js';
import { fn, type Pointer } from './library.js';
import { toStruct, toWire, tpm2bContent } from './mu.js';
import { sha256Selection } from './pcr.js';
import { type AkAlgorithm, akTemplate, EMPTY_SENSITIVE, wrapTpm2b } from './templates.js';

export interface AttestationKey {
  /** ESYS_TR of the loaded key. */
  handle: number;
  algorithm: AkAlgorithm;
  /** TPMT_PUBLIC wire bytes, no size prefix. */
  public: Buffer;
  /** TPM2B_NAME content: 0x000b || SHA-256(TPMT_PUBLIC). */
  name: Buffer;
}

export function objectName(tpmtPublic: Buffer): Buffer {
  const name = Buffer.alloc(2);
  name.writeUInt16BE(ALG.SHA256);
  return Buffer.concat([name, createHash('sha256').update(tpmtPublic).digest()]);
}

export const EMPTY_DIGEST = { size: 0, buffer: new Array<number>(64).fill(0) };

/** CreatePrimary under `hierarchy` from a TPMT_PUBLIC template; the object is tracked for flushing. */
export async function createPrimary(
  c: EsysContext,
  ctx: Pointer,
  operation: string,
  hierarchy: number,
  template: Buffer,
): Promise<{ handle: number; public: Buffer }> {
  const inSensitive = toStruct('TPM2B_SENSITIVE_CREATE', EMPTY_SENSITIVE);
  const inPublic = toStruct('TPM2B_PUBLIC', wrapTpm2b(template), 'template');
  const handle: [number] = [0];
  const outPublic: [Pointer] = [null];
  const creationData: [Pointer] = [null];
  const creationHash: [Pointer] = [null];
  const creationTicket: [Pointer] = [null];
  try {
    await c.esys(
      `${operation} (Esys_CreatePrimary)`,
      fn.Esys_CreatePrimary,
      ctx,
      hierarchy,
      ESYS_TR.PASSWORD,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      inSensitive,
      inPublic,
      EMPTY_DIGEST,
      sha256Selection([]),
      handle,
      outPublic,
      creationData,
      creationHash,
      creationTicket,
    );
    c.transients.add(handle[0]);
    return { handle: handle[0], public: Buffer.from(tpm2bContent(toWire('TPM2B_PUBLIC', outPublic[0]))) };
  } finally {
    c.free(outPublic[0], creationData[0], creationHash[0], creationTicket[0]);
  }
}

export async function createAk(
  c: EsysContext,
  ctx: Pointer,
  algorithm: AkAlgorithm,
): Promise<AttestationKey> {
  const key = await createPrimary(c, ctx, 'createAk', ESYS_TR.RH_ENDORSEMENT, akTemplate(algorithm));
  return { handle: key.handle, algorithm, public: key.public, name: objectName(key.public) };
}

export async function readPublic(
  c: EsysContext,
  ctx: Pointer,
  handle: number,
): Promise<{ public: Buffer; name: Buffer }> {
  const outPublic: [Pointer] = [null];
  const name: [Pointer] = [null];
  const qualifiedName: [Pointer] = [null];
  try {
    await c.esys(
      'readPublic (Esys_ReadPublic)',
      fn.Esys_ReadPublic,
      ctx,
      handle,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      outPublic,
      name,
      qualifiedName,
    );
    return {
      public: Buffer.from(tpm2bContent(toWire('TPM2B_PUBLIC', outPublic[0]))),
      name: Buffer.from(tpm2bContent(toWire('TPM2B_NAME', name[0]))),
    };
  } finally {
    c.free(outPublic[0], name[0], qualifiedName[0]);
  }
}
