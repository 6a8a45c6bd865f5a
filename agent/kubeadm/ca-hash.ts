import { createHash, X509Certificate } from 'node:crypto';

/**
 * The discovery pin kubeadm prints as --discovery-token-ca-cert-hash: SHA-256 over the CA certificate's
 * SubjectPublicKeyInfo, DER-encoded (RFC 7469 style), as "sha256:<hex>".
 *
 * The SPKI bytes are taken verbatim from the certificate rather than re-encoded from the parsed key, so the
 * hash is the one kubeadm computes even for encodings a re-export might normalize.
 */
export function caCertHash(caCertPem: string | Buffer): string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(caCertPem);
  } catch (err) {
    throw new Error(`CA certificate: not a PEM/DER X.509 certificate (${(err as Error).message})`);
  }
  return `sha256:${createHash('sha256').update(spkiOf(cert.raw)).digest('hex')}`;
}

/** Certificate ::= SEQ { tbs SEQ { [0] version?, serial, sigAlg, issuer, validity, subject, spki, … }, … } */
function spkiOf(der: Buffer): Buffer {
  const cert = readTlv(der, 0);
  const tbs = readTlv(der, cert.contentStart);
  let off = tbs.contentStart;
  let field = readTlv(der, off);
  if (der[off] === 0xa0) {
    off = field.end;
    field = readTlv(der, off);
  }
  // serial, signature algorithm, issuer, validity, subject
  for (let i = 0; i < 5; i++) {
    off = field.end;
    field = readTlv(der, off);
  }
  if (der[off] !== 0x30) throw new Error('CA certificate: SubjectPublicKeyInfo not found');
  return der.subarray(off, field.end);
}

function readTlv(buf: Buffer, off: number): { contentStart: number; end: number } {
  let p = off + 1;
  const first = buf[p++];
  if (first === undefined) throw new Error('CA certificate: truncated DER');
  let len = first;
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n === 0 || n > 4) throw new Error('CA certificate: unsupported DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[p++] ?? 0);
  }
  const end = p + len;
  if (end > buf.length) throw new Error('CA certificate: truncated DER');
  return { contentStart: p, end };
}
