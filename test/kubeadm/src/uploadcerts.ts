import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** The files upload-certs shares, keyed as in the kubeadm-certs Secret ("etcd/ca.crt" -> "etcd-ca.crt"). */
export const SHARED_CERTS = [
  'ca.crt',
  'ca.key',
  'sa.key',
  'sa.pub',
  'front-proxy-ca.crt',
  'front-proxy-ca.key',
  'etcd/ca.crt',
  'etcd/ca.key',
];

export const secretKeyFor = (file: string) => file.replace('/', '-');

export function generateCertificateKey(): string {
  return randomBytes(32).toString('hex');
}

/** kubeadm's cryptoutil.EncryptBytes: AES-256-GCM, nonce prepended to ciphertext+tag. */
export function encryptBytes(data: Buffer, keyHex: string): Buffer {
  const key = Buffer.from(keyHex, 'hex');
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  const ct = Buffer.concat([c.update(data), c.final()]);
  return Buffer.concat([nonce, ct, c.getAuthTag()]);
}

export function decryptBytes(blob: Buffer, keyHex: string): Buffer {
  const key = Buffer.from(keyHex, 'hex');
  if (key.length !== 32) throw new Error('crypto/aes: invalid key size');
  if (blob.length < 28) throw new Error('size of data is less than the nonce');
  const nonce = blob.subarray(0, 12);
  const tag = blob.subarray(blob.length - 16);
  const d = createDecipheriv('aes-256-gcm', key, nonce);
  d.setAuthTag(tag);
  try {
    return Buffer.concat([d.update(blob.subarray(12, blob.length - 16)), d.final()]);
  } catch {
    throw new Error('cipher: message authentication failed');
  }
}
