import { randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { x509 } from '../../common/x509.js';

/**
 * The name every attested-TLS certificate carries. Identity comes from the attestation bound to the key,
 * never from a name, so one fixed name serves every node.
 */
export const ATLS_SERVER_NAME = 'sextant-node.invalid';

/** A TLS key that lives only in this process: its public key is what attestation documents are bound to. */
export interface EphemeralIdentity {
  keyPem: string;
  certPem: string;
  certDer: Buffer;
  spkiDer: Buffer;
}

/**
 * Validity of every ephemeral certificate: the widest RFC 5280 allows (9999-12-31 means "no expiry", §4.1.2.5).
 * Nothing about these certificates is trusted from their dates: the peer pins this exact certificate and accepts
 * it only once a TPM quote bound to its key checked out, and the key dies with the process. Real dates would only
 * let a skewed clock break the channel ("certificate is not yet valid" when the server runs ahead of the client),
 * and OpenSSL offers Node no way to skip the date check for one pinned anchor.
 */
export const EPHEMERAL_NOT_BEFORE = new Date(Date.UTC(1970, 0, 1));
export const EPHEMERAL_NOT_AFTER = new Date(Date.UTC(9999, 11, 31, 23, 59, 59));

/** Creates a fresh P-256 key and a self-signed certificate for it. The key never leaves memory. */
export async function createEphemeralIdentity(commonName = 'sextant-atls'): Promise<EphemeralIdentity> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex'),
    name: `CN=${commonName}`,
    notBefore: EPHEMERAL_NOT_BEFORE,
    notAfter: EPHEMERAL_NOT_AFTER,
    keys,
    signingAlgorithm: algorithm,
    extensions: [
      // CA so OpenSSL accepts the pinned certificate as its own trust anchor.
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, true),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: ATLS_SERVER_NAME }]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const certDer = Buffer.from(cert.rawData);
  return {
    keyPem: toPem('PRIVATE KEY', pkcs8),
    certPem: toPem('CERTIFICATE', certDer),
    certDer,
    spkiDer: spkiOf(certDer),
  };
}

/** The DER SubjectPublicKeyInfo of a certificate: what channel binding hashes. */
export function spkiOf(certDer: Buffer): Buffer {
  return new X509Certificate(certDer).publicKey.export({ type: 'spki', format: 'der' });
}

export function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
