// TPMT_PUBLIC / TPMT_SIGNATURE wire bytes -> node:crypto objects, for verifiers and tools that want PEM.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { ALG, ECC_NIST_P256 } from './constants.js';

function b64url(b: Buffer): string {
  return b.toString('base64url');
}

/** A TPMT_PUBLIC (RSA or ECC P-256 signing/decryption key) as a node:crypto public KeyObject. */
export function publicKeyFromTpmt(tpmtPublic: Buffer): KeyObject {
  let o = 0;
  const u16 = () => {
    const v = tpmtPublic.readUInt16BE(o);
    o += 2;
    return v;
  };
  const type = u16();
  u16(); // nameAlg
  o += 4; // objectAttributes
  o += 2 + tpmtPublic.readUInt16BE(o); // authPolicy
  const symmetric = u16();
  if (symmetric !== ALG.NULL) o += 4; // keyBits + mode
  const scheme = u16();
  if (scheme !== ALG.NULL) o += 2; // scheme hash
  if (type === ALG.RSA) {
    const keyBits = u16();
    const exponent = tpmtPublic.readUInt32BE(o) || 65537;
    o += 4;
    const n = tpmtPublic.subarray(o + 2, o + 2 + tpmtPublic.readUInt16BE(o));
    if (n.length * 8 !== keyBits)
      throw new TypeError(`TPMT_PUBLIC: RSA modulus is ${n.length * 8} bits, keyBits says ${keyBits}`);
    const e = Buffer.alloc(4);
    e.writeUInt32BE(exponent);
    let start = 0;
    while (start < 3 && e[start] === 0) start++;
    return createPublicKey({
      key: { kty: 'RSA', n: b64url(n), e: b64url(e.subarray(start)) },
      format: 'jwk',
    });
  }
  if (type === ALG.ECC) {
    const curve = u16();
    if (curve !== ECC_NIST_P256)
      throw new TypeError(`TPMT_PUBLIC: ECC curve 0x${curve.toString(16)} is not P-256`);
    const kdf = u16();
    if (kdf !== ALG.NULL) o += 2;
    const x = tpmtPublic.subarray(o + 2, o + 2 + tpmtPublic.readUInt16BE(o));
    o += 2 + x.length;
    const y = tpmtPublic.subarray(o + 2, o + 2 + tpmtPublic.readUInt16BE(o));
    return createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: b64url(pad(x, 32)), y: b64url(pad(y, 32)) },
      format: 'jwk',
    });
  }
  throw new TypeError(`TPMT_PUBLIC: key type 0x${type.toString(16)} is neither RSA nor ECC`);
}

function pad(b: Buffer, size: number): Buffer {
  return b.length >= size ? b : Buffer.concat([Buffer.alloc(size - b.length), b]);
}
