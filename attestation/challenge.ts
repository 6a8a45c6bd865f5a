import { randomBytes } from 'node:crypto';
import type { AttesterIdentity, Challenge } from '../gen/proto/attestation.js';
import { makeCredential } from './credential.js';
import { type Trust, verifyEkCertificate } from './ek-chain.js';
import { AttestationError, ParseError } from './errors.js';
import { parsePublicCached } from './key-cache.js';
import { TPM_ALG, TPMA_OBJECT, type TpmPublic } from './tpm-structures.js';

/** What the verifier keeps from a challenge to validate the answer. Holds the secret: never log it. */
export interface ExpectedChallenge {
  nonce: Buffer;
  /** the credential secret wrapped to the EK; the document must carry it back */
  secret: Buffer;
  identity: AttesterIdentity;
  /** name of the challenged AK (0x000b ‖ SHA-256(ak_public)): a stable identity of the node's TPM */
  akName: Buffer;
}

export const NONCE_BYTES = 32;
export const SECRET_BYTES = 32;

const AK_REQUIRED =
  TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.restricted | TPMA_OBJECT.sign;

function parseIdentityKey(bytes: Buffer, field: string, check: 'ek-chain' | 'ak-trust'): TpmPublic {
  if (bytes.length === 0) throw new AttestationError(check, `${field} is empty`);
  try {
    return parsePublicCached(bytes, field);
  } catch (err) {
    if (err instanceof ParseError || err instanceof RangeError || err instanceof TypeError) {
      throw new AttestationError(check, `${field} is not a usable TPMT_PUBLIC: ${err.message}`);
    }
    throw err;
  }
}

/**
 * The AK must be a restricted signing key that cannot leave its TPM: only such a key refuses to sign data that
 * starts with TPM_GENERATED, so only then is a signed TPMS_ATTEST the TPM's own statement. The attributes are part
 * of the AK name, so the credential activation vouches for them too.
 */
export function checkAkAttributes(ak: TpmPublic): void {
  if ((ak.attributes & AK_REQUIRED) !== AK_REQUIRED || ak.attributes & TPMA_OBJECT.decrypt) {
    throw new AttestationError(
      'ak-trust',
      `ak_public attributes 0x${ak.attributes.toString(16).padStart(8, '0')}: an AK must be fixedTPM|fixedParent|restricted|sign and not decrypt`,
    );
  }
  if (ak.nameAlg !== TPM_ALG.SHA256) {
    throw new AttestationError(
      'ak-trust',
      `ak_public nameAlg 0x${ak.nameAlg.toString(16)}: expected SHA-256`,
    );
  }
}

/** Parses and checks identity keys; shared by createChallenge and the validator (results are cached). */
export function identityKeys(
  identity: AttesterIdentity,
  trust: Trust,
): { ek: TpmPublic; ak: TpmPublic; ekCertificateHash: Buffer } {
  const ek = parseIdentityKey(identity.ekPublic, 'ek_public', 'ek-chain');
  const ekCertificateHash = verifyEkCertificate(trust, identity.ekCertificate, ek);
  const ak = parseIdentityKey(identity.akPublic, 'ak_public', 'ak-trust');
  checkAkAttributes(ak);
  return { ek, ak, ekCertificateHash };
}

/**
 * Starts a verification: checks the attester's EK certificate chain first (so nothing is wrapped to an
 * uncertified key), then wraps a fresh 32-byte secret to the EK for the AK's name and picks a fresh 32-byte nonce.
 * Send `challenge`, keep `expected` (single use) for validateDocument.
 */
export function createChallenge(
  identity: AttesterIdentity,
  trust: Trust,
): { challenge: Challenge; expected: ExpectedChallenge } {
  const { ek, ak } = identityKeys(identity, trust);
  const nonce = randomBytes(NONCE_BYTES);
  const secret = randomBytes(SECRET_BYTES);
  let wrapped: ReturnType<typeof makeCredential>;
  try {
    wrapped = makeCredential(ek, ak.name, secret);
  } catch (err) {
    throw new AttestationError('ek-chain', `cannot wrap a credential to this EK: ${(err as Error).message}`);
  }
  return {
    challenge: { nonce, credentialBlob: wrapped.credentialBlob, encryptedSecret: wrapped.encryptedSecret },
    expected: { nonce, secret, identity, akName: ak.name },
  };
}
