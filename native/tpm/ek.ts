// The RSA endorsement key and its certificate (TCG EK Credential Profile locations).
import {
  EK_RSA_CERT_NV_INDEX,
  EK_RSA_PERSISTENT_HANDLE,
  ESYS_TR,
  NV_READ_CHUNK,
  TPM_RC_HANDLE,
} from './constants.js';
import type { EsysContext } from './context.js';
import { baseRc, TpmError } from './errors.js';
import { createPrimary, readPublic } from './keys.js';
import { fn, type Pointer } from './library.js';
import { toWire, tpm2bContent } from './mu.js';
import { ekRsaTemplate } from './templates.js';

export interface EndorsementKey {
  /** ESYS_TR of the EK (persistent, or a transient this context flushes on close). */
  handle: number;
  /** TPMT_PUBLIC wire bytes. */
  public: Buffer;
  /** DER certificate from NV 0x01c00002, or null when the TPM has none. */
  certificate: Buffer | null;
}

/**
 * Esys_TR_FromTPMPublic, or null when the TPM says nothing is defined at that handle (TPM_RC_HANDLE). Any other
 * failure, a dropped command above all, is thrown: taking it for "absent" would fix a missing EK certificate
 * into the agent's identity for the life of the process.
 */
async function trFromTpmPublic(c: EsysContext, ctx: Pointer, tpmHandle: number): Promise<number | null> {
  const out: [number] = [0];
  try {
    await c.esys(
      'Esys_TR_FromTPMPublic',
      fn.Esys_TR_FromTPMPublic,
      ctx,
      tpmHandle,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      out,
    );
    return out[0];
  } catch (err) {
    if (err instanceof TpmError && err.rc >>> 16 === 0 && baseRc(err.rc) === TPM_RC_HANDLE) return null;
    throw err;
  }
}

async function readNv(c: EsysContext, ctx: Pointer, nvIndex: number): Promise<Buffer> {
  const nvPublic: [Pointer] = [null];
  const nvName: [Pointer] = [null];
  let size: number;
  try {
    await c.esys(
      'readEndorsementKey (Esys_NV_ReadPublic)',
      fn.Esys_NV_ReadPublic,
      ctx,
      nvIndex,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      nvPublic,
      nvName,
    );
    // TPM2B_NV_PUBLIC wire: size(2) nvIndex(4) nameAlg(2) attributes(4) authPolicy(2+n) dataSize(2)
    const wire = toWire('TPM2B_NV_PUBLIC', nvPublic[0]);
    const policySize = wire.readUInt16BE(12);
    size = wire.readUInt16BE(14 + policySize);
  } finally {
    c.free(nvPublic[0], nvName[0]);
  }
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < size; offset += NV_READ_CHUNK) {
    const data: [Pointer] = [null];
    try {
      await c.esys(
        'readEndorsementKey (Esys_NV_Read)',
        fn.Esys_NV_Read,
        ctx,
        ESYS_TR.RH_OWNER,
        nvIndex,
        ESYS_TR.PASSWORD,
        ESYS_TR.NONE,
        ESYS_TR.NONE,
        Math.min(NV_READ_CHUNK, size - offset),
        offset,
        data,
      );
      chunks.push(Buffer.from(tpm2bContent(toWire('TPM2B_MAX_NV_BUFFER', data[0]))));
    } finally {
      c.free(data[0]);
    }
  }
  return Buffer.concat(chunks);
}

async function closeTr(c: EsysContext, ctx: Pointer, tr: number): Promise<void> {
  await c.esys('Esys_TR_Close', fn.Esys_TR_Close, ctx, [tr]);
}

// One EK per context while it stays loaded: recreating it on every call would fill swtpm's 3 object slots.
const cache = new WeakMap<EsysContext, EndorsementKey>();

export async function readEndorsementKey(c: EsysContext, ctx: Pointer): Promise<EndorsementKey> {
  const cached = cache.get(c);
  if (cached && (c.transients.has(cached.handle) || c.persistents.has(cached.handle))) {
    return {
      ...cached,
      public: Buffer.from(cached.public),
      certificate: cached.certificate && Buffer.from(cached.certificate),
    };
  }
  const ek = await loadEndorsementKey(c, ctx);
  cache.set(c, ek);
  return ek;
}

async function loadEndorsementKey(c: EsysContext, ctx: Pointer): Promise<EndorsementKey> {
  let handle = await trFromTpmPublic(c, ctx, EK_RSA_PERSISTENT_HANDLE);
  let pub: Buffer;
  if (handle !== null) {
    c.persistents.add(handle);
    pub = (await readPublic(c, ctx, handle)).public;
  } else {
    const created = await createPrimary(
      c,
      ctx,
      'readEndorsementKey',
      ESYS_TR.RH_ENDORSEMENT,
      ekRsaTemplate(),
    );
    handle = created.handle;
    pub = created.public;
  }
  let certificate: Buffer | null = null;
  const nv = await trFromTpmPublic(c, ctx, EK_RSA_CERT_NV_INDEX);
  if (nv !== null) {
    try {
      certificate = await readNv(c, ctx, nv);
    } finally {
      await closeTr(c, ctx, nv);
    }
  }
  return { handle, public: pub, certificate };
}
