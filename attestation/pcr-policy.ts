// The signed PCR 11 policy, computed without a TPM (the image build has none): PolicyPCR and PolicyAuthorize
// digests, the name of the PCR-signing key, PCR 11 predicted from a UKI's sections, and the signature that
// approves a policy. RSA-2048 with RSASSA-PKCS1-v1_5/SHA-256, the only scheme systemd-measure 252 signs with.
import { createHash, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { u16, u32 } from '../common/big-endian.js';

const SHA256 = 0x000b;
const RSA = 0x0001;
const NULL_ALG = 0x0010;
const TPM_CC_POLICY_PCR = 0x0000017f;
const TPM_CC_POLICY_AUTHORIZE = 0x0000016a;
/** The PCR the UKI stub measures its sections into (systemd's "kernel boot" PCR). */
export const UKI_PCR = 11;
/** decrypt | sign | userWithAuth: the attributes systemd gives the PCR-signing key it loads (the name depends on them). */
const SIGNING_KEY_ATTRIBUTES = 0x00060040;
/** What policyRef carries: a key epoch, so a signature from before a revocation no longer satisfies the blob. */
const POLICY_REF_PREFIX = 'sextant-pcr11-epoch:';
export const MAX_EPOCH = 0xffffffff;

function sha256(...parts: Buffer[]): Buffer {
  return createHash('sha256').update(Buffer.concat(parts)).digest();
}

function assertDigest(operation: string, name: string, value: unknown): asserts value is Buffer {
  if (!Buffer.isBuffer(value) || value.length !== 32) {
    const got = Buffer.isBuffer(value) ? `${value.length} bytes` : typeof value;
    throw new TypeError(`${operation}: ${name} must be a 32-byte SHA-256 digest, got ${got}`);
  }
}

/** TPML_PCR_SELECTION wire bytes for one PCR of the SHA-256 bank. */
function pcrSelection(pcr: number): Buffer {
  const bitmap = Buffer.alloc(3);
  bitmap[pcr >> 3] = 1 << (pcr & 7);
  return Buffer.concat([u32(1), u16(SHA256), Buffer.from([3]), bitmap]);
}

/** TPM2_PolicyPCR(PCR 11 = `pcr11`) from an empty policy: policyDigest = H(0…0 ‖ CC ‖ selection ‖ H(value)). */
export function policyPcrDigest(pcr11: Buffer, previous: Buffer = Buffer.alloc(32)): Buffer {
  assertDigest('policyPcrDigest', 'pcr11', pcr11);
  assertDigest('policyPcrDigest', 'previous', previous);
  return sha256(previous, u32(TPM_CC_POLICY_PCR), pcrSelection(UKI_PCR), sha256(pcr11));
}

/** TPM2_PolicyAuthorize: policyDigest = H(H(0…0 ‖ CC_PolicyAuthorize ‖ keyName) ‖ policyRef). */
export function policyAuthorizeDigest(keyName: Buffer, policyRef: Buffer): Buffer {
  if (!Buffer.isBuffer(keyName) || keyName.length !== 34 || keyName.readUInt16BE(0) !== SHA256) {
    throw new TypeError(
      'policyAuthorizeDigest: keyName must be a 34-byte SHA-256 TPM name (0x000b ‖ digest)',
    );
  }
  assertPolicyRef('policyAuthorizeDigest', policyRef);
  return sha256(sha256(Buffer.alloc(32), u32(TPM_CC_POLICY_AUTHORIZE), keyName), policyRef);
}

function assertPolicyRef(operation: string, policyRef: unknown): asserts policyRef is Buffer {
  if (!Buffer.isBuffer(policyRef) || policyRef.length > 32) {
    throw new TypeError(`${operation}: policyRef must be a Buffer of at most 32 bytes (a TPM2B_NONCE)`);
  }
}

/** The policyRef of key epoch `epoch`: a new epoch makes every older signature useless for a blob sealed under it. */
export function epochPolicyRef(epoch: number): Buffer {
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > MAX_EPOCH) {
    throw new RangeError(`epochPolicyRef: epoch must be an integer 0–${MAX_EPOCH}, got ${String(epoch)}`);
  }
  return Buffer.from(`${POLICY_REF_PREFIX}${epoch}`);
}

function rsaPublic(operation: string, key: KeyObject | string): KeyObject {
  const k = typeof key === 'string' ? createPublicKey(key) : key;
  const pub = k.type === 'private' ? createPublicKey(k) : k;
  const details = pub.asymmetricKeyDetails;
  if (pub.asymmetricKeyType !== 'rsa' || details?.modulusLength !== 2048) {
    throw new TypeError(
      `${operation}: the PCR-signing key must be RSA-2048, got ${pub.asymmetricKeyType ?? 'unknown'} ` +
        `${details?.modulusLength ?? ''}`.trimEnd(),
    );
  }
  return pub;
}

/**
 * TPMT_PUBLIC of the PCR-signing key as LoadExternal receives it. The exponent is written out (65537), not 0:
 * the TPM hashes the bytes it is given, so the two spellings give two names.
 */
export function signingKeyTpmtPublic(key: KeyObject | string): Buffer {
  const pub = rsaPublic('signingKeyTpmtPublic', key);
  const jwk = pub.export({ format: 'jwk' });
  const n = Buffer.from(jwk.n ?? '', 'base64url');
  const e = Buffer.from(jwk.e ?? '', 'base64url');
  return Buffer.concat([
    u16(RSA),
    u16(SHA256),
    u32(SIGNING_KEY_ATTRIBUTES),
    u16(0), // authPolicy
    u16(NULL_ALG), // symmetric
    u16(NULL_ALG), // scheme
    u16(2048),
    u32(e.readUIntBE(0, e.length)),
    u16(n.length),
    n,
  ]);
}

/** TPM name of the PCR-signing key: 0x000b ‖ SHA-256(TPMT_PUBLIC). */
export function signingKeyName(key: KeyObject | string): Buffer {
  return Buffer.concat([u16(SHA256), sha256(signingKeyTpmtPublic(key))]);
}

/** systemd's key fingerprint (`pkfp`): SHA-256 of the PKCS#1 DER public key. */
export function signingKeyFingerprint(key: KeyObject | string): Buffer {
  const pub = rsaPublic('signingKeyFingerprint', key);
  return sha256(pub.export({ format: 'der', type: 'pkcs1' }));
}

/** What a sealed blob's authPolicy is: any PCR policy the key signs for this epoch. */
export function sealingPolicy(key: KeyObject | string, epoch: number): Buffer {
  return policyAuthorizeDigest(signingKeyName(key), epochPolicyRef(epoch));
}

/** The signature TPM2_VerifySignature checks for PolicyAuthorize: RSASSA-SHA256 over approvedPolicy ‖ policyRef. */
export function signPolicy(
  privateKey: KeyObject | string,
  approvedPolicy: Buffer,
  policyRef: Buffer,
): Buffer {
  assertDigest('signPolicy', 'approvedPolicy', approvedPolicy);
  assertPolicyRef('signPolicy', policyRef);
  rsaPublic('signPolicy', privateKey);
  return sign('sha256', Buffer.concat([approvedPolicy, policyRef]), privateKey);
}

export function verifyPolicySignature(
  key: KeyObject | string,
  approvedPolicy: Buffer,
  policyRef: Buffer,
  signature: Buffer,
): boolean {
  const pub = rsaPublic('verifyPolicySignature', key);
  return verify('sha256', Buffer.concat([approvedPolicy, policyRef]), pub, signature);
}

/** A UKI section as the stub measures it: the name (".linux", ...) and the content. */
export interface UkiSection {
  name: string;
  content: Buffer;
}

/** The order systemd-stub 252 measures the sections in (systemd-measure's `unified_sections`). */
export const UKI_SECTION_ORDER = [
  '.linux',
  '.osrel',
  '.cmdline',
  '.initrd',
  '.splash',
  '.dtb',
  '.pcrpkey',
] as const;

/**
 * PCR 11 after the stub measured `sections` (each: extend(H(name ‖ NUL)), extend(H(content)), in UKI order)
 * and then each of `phases` (extend(H(phase))), from a zero PCR.
 */
export function predictPcr11(sections: readonly UkiSection[], phases: readonly string[] = []): Buffer {
  const order: readonly string[] = UKI_SECTION_ORDER;
  const seen = new Set<string>();
  for (const [i, s] of sections.entries()) {
    if (!order.includes(s.name)) {
      throw new TypeError(
        `predictPcr11: sections[${i}].name must be one of ${order.join(', ')}, got ${JSON.stringify(s.name)}`,
      );
    }
    if (seen.has(s.name)) throw new TypeError(`predictPcr11: sections[${i}]: ${s.name} appears twice`);
    if (!Buffer.isBuffer(s.content))
      throw new TypeError(`predictPcr11: sections[${i}].content must be a Buffer`);
    seen.add(s.name);
  }
  const sorted = [...sections].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
  let pcr: Buffer = Buffer.alloc(32);
  for (const s of sorted) {
    pcr = sha256(pcr, sha256(Buffer.from(`${s.name}\0`)));
    pcr = sha256(pcr, sha256(s.content));
  }
  for (const phase of phases) pcr = extendPhase(pcr, phase);
  return pcr;
}

/** PCR 11 after `phase` is extended (systemd-pcrphase: H(phase), no NUL). */
export function extendPhase(pcr: Buffer, phase: string): Buffer {
  assertDigest('extendPhase', 'pcr', pcr);
  return sha256(pcr, sha256(Buffer.from(phase)));
}

/** One approved PCR 11 value: the entry systemd writes into `.pcrsig`, plus the epoch in our policyRef. */
export interface SignedPcrPolicy {
  pcrs: number[];
  /** hex SHA-256 of the PKCS#1 DER signing key */
  pkfp: string;
  /** hex PolicyPCR digest */
  pol: string;
  /** base64 RSASSA signature over pol ‖ policyRef */
  sig: string;
  epoch: number;
}

/** Signs the PolicyPCR digest of `pcr11` for key epoch `epoch`. */
export function signPcr11(privateKey: KeyObject | string, pcr11: Buffer, epoch: number): SignedPcrPolicy {
  const pol = policyPcrDigest(pcr11);
  return {
    pcrs: [UKI_PCR],
    pkfp: signingKeyFingerprint(privateKey).toString('hex'),
    pol: pol.toString('hex'),
    sig: signPolicy(privateKey, pol, epochPolicyRef(epoch)).toString('base64'),
    epoch,
  };
}
