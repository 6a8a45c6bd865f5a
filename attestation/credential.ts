import {
  constants,
  createCipheriv,
  createECDH,
  createHash,
  createHmac,
  publicEncrypt,
  randomBytes,
} from 'node:crypto';
import { u32 } from '../common/big-endian.js';
import { tpm2b } from '../native/tpm/mu.js';
import { hashAlgorithm, TPM_ALG, type TpmPublic } from './tpm-structures.js';

/** A credential wrapped to an EK for one object name: exactly what TPM2_ActivateCredential takes. */
export interface WrappedCredential {
  /** TPM2B_ID_OBJECT wire bytes, including the u16 size prefix */
  credentialBlob: Buffer;
  /** TPM2B_ENCRYPTED_SECRET wire bytes, including the u16 size prefix */
  encryptedSecret: Buffer;
}

/** TPM labels are NUL-terminated and the NUL is part of what is hashed. */
function label(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'latin1');
}

/** KDFa (TPM 2.0 Part 1, §11.4.10.2): counter-mode HMAC KDF. */
export function kdfa(
  hash: string,
  key: Buffer,
  use: string,
  contextU: Buffer,
  contextV: Buffer,
  bits: number,
): Buffer {
  const out: Buffer[] = [];
  let produced = 0;
  for (let counter = 1; produced * 8 < bits; counter++) {
    const block = createHmac(hash, key)
      .update(u32(counter))
      .update(label(use))
      .update(contextU)
      .update(contextV)
      .update(u32(bits))
      .digest();
    out.push(block);
    produced += block.length;
  }
  return Buffer.concat(out).subarray(0, bits / 8);
}

/** KDFe (TPM 2.0 Part 1, §11.4.10.3): the ECDH key derivation (SP 800-56A concatenation KDF). */
export function kdfe(
  hash: string,
  z: Buffer,
  use: string,
  partyU: Buffer,
  partyV: Buffer,
  bits: number,
): Buffer {
  const out: Buffer[] = [];
  let produced = 0;
  for (let counter = 1; produced * 8 < bits; counter++) {
    const block = createHash(hash)
      .update(u32(counter))
      .update(z)
      .update(label(use))
      .update(partyU)
      .update(partyV)
      .digest();
    out.push(block);
    produced += block.length;
  }
  return Buffer.concat(out).subarray(0, bits / 8);
}

const ECDH_CURVES: Record<number, { name: string; size: number }> = {
  3: { name: 'prime256v1', size: 32 },
  4: { name: 'secp384r1', size: 48 },
  5: { name: 'secp521r1', size: 66 },
};

function pad(b: Buffer, size: number): Buffer {
  return b.length >= size ? b : Buffer.concat([Buffer.alloc(size - b.length), b]);
}

/** The seed and its encryption to the EK (TPM 2.0 Part 1, §24.4 "Secret Sharing"). */
function protectSeed(
  ek: TpmPublic,
  hashName: string,
  digestSize: number,
): { seed: Buffer; encrypted: Buffer } {
  if (ek.type === 'rsa') {
    const seed = randomBytes(digestSize);
    const encrypted = publicEncrypt(
      {
        key: ek.key,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: hashName,
        oaepLabel: label('IDENTITY'),
      },
      seed,
    );
    return { seed, encrypted };
  }
  const curve = ek.ecc ? ECDH_CURVES[ek.ecc.curveId] : undefined;
  if (!curve || !ek.ecc) throw new RangeError('EK public: unsupported ECC curve for credential wrapping');
  const ecdh = createECDH(curve.name);
  const ephemeral = ecdh.generateKeys(); // uncompressed 04 ‖ x ‖ y
  const ekPoint = Buffer.concat([Buffer.from([4]), pad(ek.ecc.x, curve.size), pad(ek.ecc.y, curve.size)]);
  const z = ecdh.computeSecret(ekPoint); // the x coordinate of the shared point
  const ex = ephemeral.subarray(1, 1 + curve.size);
  const ey = ephemeral.subarray(1 + curve.size);
  const seed = kdfe(hashName, z, 'IDENTITY', ex, pad(ek.ecc.x, curve.size), digestSize * 8);
  return { seed, encrypted: Buffer.concat([tpm2b(ex), tpm2b(ey)]) };
}

/**
 * TPM2_MakeCredential done in software: wraps `secret` so that only the TPM holding the EK's private key, with an
 * object named `objectName` loaded, can recover it via TPM2_ActivateCredential.
 */
export function makeCredential(ek: TpmPublic, objectName: Buffer, secret: Buffer): WrappedCredential {
  const hash = hashAlgorithm(ek.nameAlg);
  if (!hash) throw new RangeError(`EK public: unsupported nameAlg 0x${ek.nameAlg.toString(16)}`);
  if (ek.symmetric.algorithm !== TPM_ALG.AES || ek.symmetric.mode !== TPM_ALG.CFB) {
    throw new RangeError(
      'EK public: expected an AES-CFB storage key (symmetric parameters of a standard EK)',
    );
  }
  if (secret.length > hash.size) throw new RangeError(`credential secret: at most ${hash.size} bytes`);
  const { seed, encrypted } = protectSeed(ek, hash.name, hash.size);

  const symKey = kdfa(hash.name, seed, 'STORAGE', objectName, Buffer.alloc(0), ek.symmetric.keyBits);
  const cipher = createCipheriv(`aes-${ek.symmetric.keyBits}-cfb`, symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([cipher.update(tpm2b(secret)), cipher.final()]);
  const hmacKey = kdfa(hash.name, seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), hash.size * 8);
  const outerHmac = createHmac(hash.name, hmacKey).update(encIdentity).update(objectName).digest();

  const idObject = Buffer.concat([tpm2b(outerHmac), encIdentity]);
  return { credentialBlob: tpm2b(idObject), encryptedSecret: tpm2b(encrypted) };
}
