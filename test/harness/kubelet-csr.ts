// A PKCS#10 request shaped the way a kubelet's TLS bootstrap makes one (ECDSA P-256, subject O=system:nodes,
// CN=system:node:<name>) — or bent for the refusal cases (another subject, SANs) — and the CSR object it posts.
import { webcrypto } from 'node:crypto';
import { x509 } from '../../common/x509.js';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

/** PEM of a fresh request for `subject` (x509 name string, e.g. "O=system:nodes, CN=system:node:w-0"). */
export async function csrPem(subject: string, options: { dnsNames?: string[] } = {}): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const req = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subject,
    keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
    signingAlgorithm: ALG,
    extensions: options.dnsNames
      ? [new x509.SubjectAlternativeNameExtension(options.dnsNames.map((value) => ({ type: 'dns', value })))]
      : [],
  });
  return req.toString('pem');
}

export const kubeletSubject = (node: string) => `O=system:nodes, CN=system:node:${node}`;

/** The CertificateSigningRequest the kubelet posts (kubelet-client signer, its usages). */
export function kubeletCsrObject(name: string, pem: string, usages = ['digital signature', 'client auth']) {
  return {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: { name },
    spec: {
      request: Buffer.from(pem).toString('base64'),
      signerName: 'kubernetes.io/kube-apiserver-client-kubelet',
      usages,
    },
  };
}
