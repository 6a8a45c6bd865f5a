import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { ALG } from '../native/tpm/constants.js';
import { ByteReader } from './byte-reader.js';
import { ParseError } from './errors.js';

/** TPM algorithm identifiers (TPM_ALG_ID): the binding's table, under the name the verifier side uses. */
export const TPM_ALG = ALG;

export const TPM_GENERATED_VALUE = 0xff544347;
export const TPM_ST_ATTEST_QUOTE = 0x8018;

/** TPMA_OBJECT bits that matter to a verifier. */
export const TPMA_OBJECT = {
  fixedTPM: 0x00000002,
  fixedParent: 0x00000010,
  sensitiveDataOrigin: 0x00000020,
  userWithAuth: 0x00000040,
  adminWithPolicy: 0x00000080,
  restricted: 0x00010000,
  decrypt: 0x00020000,
  sign: 0x00040000,
} as const;

const HASHES: ReadonlyMap<number, { name: string; size: number }> = new Map([
  [TPM_ALG.SHA1, { name: 'sha1', size: 20 }],
  [TPM_ALG.SHA256, { name: 'sha256', size: 32 }],
  [TPM_ALG.SHA384, { name: 'sha384', size: 48 }],
  [TPM_ALG.SHA512, { name: 'sha512', size: 64 }],
]);

const CURVES: ReadonlyMap<number, { jwk: string; size: number }> = new Map([
  [0x0003, { jwk: 'P-256', size: 32 }],
  [0x0004, { jwk: 'P-384', size: 48 }],
  [0x0005, { jwk: 'P-521', size: 66 }],
]);

/** node:crypto's name for a TPM hash algorithm, or undefined when unsupported. */
export function hashAlgorithm(alg: number): { name: string; size: number } | undefined {
  return HASHES.get(alg);
}

export interface TpmPublic {
  type: 'rsa' | 'ecc';
  nameAlg: number;
  attributes: number;
  authPolicy: Buffer;
  /** symmetric algorithm of a storage/EK key (TPM_ALG_NULL for signing keys) */
  symmetric: { algorithm: number; keyBits: number; mode: number };
  /** signing scheme (TPM_ALG_NULL when unrestricted) and its hash */
  scheme: { scheme: number; hashAlg: number };
  rsa?: { keyBits: number; exponent: number; modulus: Buffer };
  ecc?: { curveId: number; x: Buffer; y: Buffer };
  /** 0x000b ‖ SHA-256(TPMT_PUBLIC) for nameAlg SHA-256 */
  name: Buffer;
  key: KeyObject;
}

function readSymDefObject(r: ByteReader): TpmPublic['symmetric'] {
  const algorithm = r.u16('parameters.symmetric.algorithm');
  if (algorithm === TPM_ALG.NULL) return { algorithm, keyBits: 0, mode: TPM_ALG.NULL };
  return {
    algorithm,
    keyBits: r.u16('parameters.symmetric.keyBits'),
    mode: r.u16('parameters.symmetric.mode'),
  };
}

function readScheme(r: ByteReader, field: string): TpmPublic['scheme'] {
  const scheme = r.u16(`${field}.scheme`);
  if (scheme === TPM_ALG.NULL) return { scheme, hashAlg: TPM_ALG.NULL };
  const hashAlg = r.u16(`${field}.hashAlg`);
  if (scheme === TPM_ALG.ECDAA) r.u16(`${field}.count`);
  return { scheme, hashAlg };
}

function leftPad(b: Buffer, size: number, field: string): Buffer {
  if (b.length > size) throw new RangeError(`${field}: ${b.length} bytes, more than the curve's ${size}`);
  if (b.length === size) return b;
  return Buffer.concat([Buffer.alloc(size - b.length), b]);
}

/** Name of an object: nameAlg ‖ H_nameAlg(TPMT_PUBLIC). */
export function objectName(tpmtPublic: Buffer, nameAlg = TPM_ALG.SHA256 as number): Buffer {
  const hash = hashAlgorithm(nameAlg);
  if (!hash) throw new RangeError(`object name: unsupported nameAlg 0x${nameAlg.toString(16)}`);
  const alg = Buffer.alloc(2);
  alg.writeUInt16BE(nameAlg);
  return Buffer.concat([alg, createHash(hash.name).update(tpmtPublic).digest()]);
}

/** Parses TPMT_PUBLIC wire bytes (no TPM2B size prefix) of an RSA or ECC key into its fields and a KeyObject. */
export function parseTpmtPublic(buf: Buffer, structure = 'TPMT_PUBLIC'): TpmPublic {
  const r = new ByteReader(buf, structure);
  const typeAlg = r.u16('type');
  const nameAlg = r.u16('nameAlg');
  const attributes = r.u32('objectAttributes');
  const authPolicy = r.tpm2b('authPolicy');
  let result: Omit<TpmPublic, 'name'>;
  if (typeAlg === TPM_ALG.RSA) {
    const symmetric = readSymDefObject(r);
    const scheme = readScheme(r, 'parameters.scheme');
    const keyBits = r.u16('parameters.keyBits');
    const exponent = r.u32('parameters.exponent');
    const modulus = r.tpm2b('unique.rsa');
    if (modulus.length * 8 !== keyBits) {
      throw new ParseError(
        structure,
        r.offset,
        `modulus is ${modulus.length * 8} bits, keyBits says ${keyBits}`,
      );
    }
    const e = exponent === 0 ? 65537 : exponent;
    const eBytes = Buffer.alloc(4);
    eBytes.writeUInt32BE(e);
    const key = createPublicKey({
      key: {
        kty: 'RSA',
        n: modulus.toString('base64url'),
        e: eBytes.subarray(eBytes.findIndex((b) => b !== 0)).toString('base64url'),
      },
      format: 'jwk',
    });
    result = {
      type: 'rsa',
      nameAlg,
      attributes,
      authPolicy,
      symmetric,
      scheme,
      rsa: { keyBits, exponent: e, modulus },
      key,
    };
  } else if (typeAlg === TPM_ALG.ECC) {
    const symmetric = readSymDefObject(r);
    const scheme = readScheme(r, 'parameters.scheme');
    const curveId = r.u16('parameters.curveID');
    readScheme(r, 'parameters.kdf');
    const x = r.tpm2b('unique.ecc.x');
    const y = r.tpm2b('unique.ecc.y');
    const curve = CURVES.get(curveId);
    if (!curve) throw new ParseError(structure, r.offset, `unsupported ECC curve 0x${curveId.toString(16)}`);
    const key = createPublicKey({
      key: {
        kty: 'EC',
        crv: curve.jwk,
        x: leftPad(x, curve.size, 'unique.ecc.x').toString('base64url'),
        y: leftPad(y, curve.size, 'unique.ecc.y').toString('base64url'),
      },
      format: 'jwk',
    });
    result = { type: 'ecc', nameAlg, attributes, authPolicy, symmetric, scheme, ecc: { curveId, x, y }, key };
  } else {
    throw new ParseError(
      structure,
      0,
      `unsupported key type 0x${typeAlg.toString(16)} (expected RSA or ECC)`,
    );
  }
  r.end();
  return { ...result, name: objectName(buf, nameAlg) };
}

export interface PcrSelection {
  hashAlg: number;
  /** PCR indices in ascending order, which is the order the TPM digests them in */
  pcrs: number[];
}

export interface TpmsAttest {
  magic: number;
  type: number;
  qualifiedSigner: Buffer;
  extraData: Buffer;
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
  firmwareVersion: bigint;
  /** present when type is TPM_ST_ATTEST_QUOTE */
  quote?: { pcrSelect: PcrSelection[]; pcrDigest: Buffer };
}

export function readPcrSelections(r: ByteReader, field: string): PcrSelection[] {
  const count = r.u32(`${field}.count`);
  if (count > 16) throw new ParseError(r.structure, r.offset - 4, `${field}.count ${count} exceeds 16`);
  const out: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const hashAlg = r.u16(`${field}[${i}].hash`);
    const sizeofSelect = r.u8(`${field}[${i}].sizeofSelect`);
    const bitmap = r.bytes(sizeofSelect, `${field}[${i}].pcrSelect`);
    const pcrs: number[] = [];
    for (let byte = 0; byte < bitmap.length; byte++) {
      const bits = bitmap[byte]!;
      for (let bit = 0; bit < 8; bit++) if (bits & (1 << bit)) pcrs.push(byte * 8 + bit);
    }
    out.push({ hashAlg, pcrs });
  }
  return out;
}

/**
 * Parses TPMS_ATTEST wire bytes. Magic and type are returned, not checked, so the validator can name that check;
 * the quote body is parsed only when type says it is a quote.
 */
export function parseTpmsAttest(buf: Buffer): TpmsAttest {
  const r = new ByteReader(buf, 'TPMS_ATTEST');
  const magic = r.u32('magic');
  const type = r.u16('type');
  const qualifiedSigner = r.tpm2b('qualifiedSigner');
  const extraData = r.tpm2b('extraData');
  const clock = r.u64('clockInfo.clock');
  const resetCount = r.u32('clockInfo.resetCount');
  const restartCount = r.u32('clockInfo.restartCount');
  const safe = r.u8('clockInfo.safe') !== 0;
  const firmwareVersion = r.u64('firmwareVersion');
  const attest: TpmsAttest = {
    magic,
    type,
    qualifiedSigner,
    extraData,
    clock,
    resetCount,
    restartCount,
    safe,
    firmwareVersion,
  };
  if (type === TPM_ST_ATTEST_QUOTE) {
    const pcrSelect = readPcrSelections(r, 'attested.quote.pcrSelect');
    const pcrDigest = r.tpm2b('attested.quote.pcrDigest');
    r.end();
    attest.quote = { pcrSelect, pcrDigest };
  }
  return attest;
}

export interface TpmtSignature {
  sigAlg: number;
  hashAlg: number;
  /** RSASSA/RSAPSS: the signature; ECDSA: r ‖ s, each left-padded to the curve size (ieee-p1363) */
  signature: Buffer;
  /** ECDSA only: r and s as carried (unpadded) */
  ecdsa?: { r: Buffer; s: Buffer };
}

/** Parses TPMT_SIGNATURE wire bytes (RSASSA, RSAPSS, ECDSA). `curveSize` pads ECDSA r/s for ieee-p1363. */
export function parseTpmtSignature(buf: Buffer, curveSize = 32): TpmtSignature {
  const r = new ByteReader(buf, 'TPMT_SIGNATURE');
  const sigAlg = r.u16('sigAlg');
  let out: TpmtSignature;
  if (sigAlg === TPM_ALG.RSASSA || sigAlg === TPM_ALG.RSAPSS) {
    const hashAlg = r.u16('signature.hash');
    out = { sigAlg, hashAlg, signature: r.tpm2b('signature.sig') };
  } else if (sigAlg === TPM_ALG.ECDSA) {
    const hashAlg = r.u16('signature.hash');
    const sr = r.tpm2b('signature.signatureR');
    const ss = r.tpm2b('signature.signatureS');
    if (sr.length > curveSize || ss.length > curveSize) {
      throw new ParseError('TPMT_SIGNATURE', r.offset, `ECDSA r/s longer than the curve size ${curveSize}`);
    }
    out = {
      sigAlg,
      hashAlg,
      signature: Buffer.concat([leftPad(sr, curveSize, 'r'), leftPad(ss, curveSize, 's')]),
      ecdsa: { r: sr, s: ss },
    };
  } else {
    throw new ParseError('TPMT_SIGNATURE', 0, `unsupported signature algorithm 0x${sigAlg.toString(16)}`);
  }
  r.end();
  return out;
}

/** Curve size in bytes of an ECC TpmPublic (for padding ECDSA r and s). */
export function curveSize(pub: TpmPublic): number {
  return pub.ecc ? (CURVES.get(pub.ecc.curveId)?.size ?? 32) : 32;
}
