// TPMT_PUBLIC templates as wire bytes (big-endian), unmarshalled into C structs by mu.ts.
import { u16, u32 } from '../../common/big-endian.js';
import { ALG, ECC_NIST_P256 } from './constants.js';

export type AkAlgorithm = 'ecc' | 'rsa';

// fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | restricted | sign
const AK_ATTRIBUTES = 0x00050072;
// fixedTPM | fixedParent | sensitiveDataOrigin | adminWithPolicy | restricted | decrypt
const EK_ATTRIBUTES = 0x000300b2;
/** TCG EK Credential Profile: PolicySecret(TPM_RH_ENDORSEMENT). */
const EK_AUTH_POLICY = Buffer.from('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa', 'hex');

function sized(content: Buffer): Buffer {
  return Buffer.concat([u16(content.length), content]);
}

/** Restricted signing key; with the same template and seed the TPM derives the same key on every boot. */
export function akTemplate(algorithm: AkAlgorithm): Buffer {
  if (algorithm === 'ecc') {
    return Buffer.concat([
      u16(ALG.ECC),
      u16(ALG.SHA256),
      u32(AK_ATTRIBUTES),
      sized(Buffer.alloc(0)), // authPolicy
      u16(ALG.NULL), // symmetric
      u16(ALG.ECDSA),
      u16(ALG.SHA256), // scheme
      u16(ECC_NIST_P256),
      u16(ALG.NULL), // kdf
      sized(Buffer.alloc(0)),
      sized(Buffer.alloc(0)), // unique x, y
    ]);
  }
  return Buffer.concat([
    u16(ALG.RSA),
    u16(ALG.SHA256),
    u32(AK_ATTRIBUTES),
    sized(Buffer.alloc(0)),
    u16(ALG.NULL),
    u16(ALG.RSASSA),
    u16(ALG.SHA256),
    u16(2048),
    u32(0), // exponent: default 65537
    sized(Buffer.alloc(0)), // unique
  ]);
}

/** TCG EK Credential Profile template L-1: RSA 2048, AES-128-CFB, low range (256 zero bytes of unique). */
export function ekRsaTemplate(): Buffer {
  return Buffer.concat([
    u16(ALG.RSA),
    u16(ALG.SHA256),
    u32(EK_ATTRIBUTES),
    sized(EK_AUTH_POLICY),
    u16(ALG.AES),
    u16(128),
    u16(ALG.CFB),
    u16(ALG.NULL),
    u16(2048),
    u32(0),
    sized(Buffer.alloc(256)),
  ]);
}

/** TPM2B_SENSITIVE_CREATE with empty userAuth and data. */
export const EMPTY_SENSITIVE = Buffer.from([0x00, 0x04, 0x00, 0x00, 0x00, 0x00]);

export function wrapTpm2b(content: Buffer): Buffer {
  return sized(content);
}
