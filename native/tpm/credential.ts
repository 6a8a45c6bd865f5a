// TPM2_ActivateCredential: proves the AK lives in the same TPM as the EK (policy session, PolicySecret(RH_ENDORSEMENT)).
import { ALG, ESYS_TR, TPM2_SE_POLICY } from './constants.js';
import type { EsysContext } from './context.js';
import { EMPTY_DIGEST } from './keys.js';
import { decodeStruct, fn, type Pointer, TPM2B_DIGEST } from './library.js';
import { toStruct } from './mu.js';

export async function activateCredential(
  c: EsysContext,
  ctx: Pointer,
  akHandle: number,
  ekHandle: number,
  credentialBlob: Buffer,
  encryptedSecret: Buffer,
): Promise<Buffer> {
  const blob = toStruct('TPM2B_ID_OBJECT', credentialBlob, 'credentialBlob');
  const secret = toStruct('TPM2B_ENCRYPTED_SECRET', encryptedSecret, 'encryptedSecret');
  const session: [number] = [0];
  await c.esys(
    'activateCredential (Esys_StartAuthSession)',
    fn.Esys_StartAuthSession,
    ctx,
    ESYS_TR.NONE,
    ESYS_TR.NONE,
    ESYS_TR.NONE,
    ESYS_TR.NONE,
    ESYS_TR.NONE,
    null,
    TPM2_SE_POLICY,
    { algorithm: ALG.NULL, keyBits: 0, mode: 0 },
    ALG.SHA256,
    session,
  );
  c.transients.add(session[0]);
  try {
    const timeout: [Pointer] = [null];
    const ticket: [Pointer] = [null];
    try {
      await c.esys(
        'activateCredential (Esys_PolicySecret)',
        fn.Esys_PolicySecret,
        ctx,
        ESYS_TR.RH_ENDORSEMENT,
        session[0],
        ESYS_TR.PASSWORD,
        ESYS_TR.NONE,
        ESYS_TR.NONE,
        EMPTY_DIGEST,
        EMPTY_DIGEST,
        EMPTY_DIGEST,
        0,
        timeout,
        ticket,
      );
    } finally {
      c.free(timeout[0], ticket[0]);
    }
    const certInfo: [Pointer] = [null];
    try {
      await c.esys(
        'activateCredential (Esys_ActivateCredential)',
        fn.Esys_ActivateCredential,
        ctx,
        akHandle,
        ekHandle,
        ESYS_TR.PASSWORD,
        session[0],
        ESYS_TR.NONE,
        blob,
        secret,
        certInfo,
      );
      const d = decodeStruct<{ size: number; buffer: ArrayLike<number> }>(certInfo[0], TPM2B_DIGEST);
      return Buffer.from(Uint8Array.from(d.buffer).subarray(0, d.size));
    } finally {
      c.free(certInfo[0]);
    }
  } finally {
    // A policy session that ActivateCredential consumed is already gone (continueSession is clear); flush is a no-op error then.
    await c.flush(session[0]).catch(() => c.transients.delete(session[0]));
  }
}
