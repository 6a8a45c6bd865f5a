import { webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { toPem } from '../../attestation/atls/index.js';
import { x509 } from '../../common/x509.js';

export interface KubeletKey {
  csrDer: Buffer;
  keyPem: string;
}

/** A fresh kubelet client key and a CSR for system:node:<name>; the key never leaves the node. */
export async function createKubeletCsr(nodeName: string, address: string): Promise<KubeletKey> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const names: x509.JsonGeneralName[] = [{ type: 'dns', value: nodeName }];
  if (isIP(address)) names.push({ type: 'ip', value: address });
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=system:node:${nodeName}, O=system:nodes`,
    keys,
    signingAlgorithm: algorithm,
    extensions: [new x509.SubjectAlternativeNameExtension(names)],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { csrDer: Buffer.from(csr.rawData), keyPem: toPem('PRIVATE KEY', pkcs8) };
}
