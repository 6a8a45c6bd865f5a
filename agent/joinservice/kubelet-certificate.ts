import { createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { x509 } from '../../common/x509.js';

type SignAlgorithm = webcrypto.EcdsaParams | webcrypto.RsaHashedImportParams;

export class CsrError extends Error {
  constructor(message: string) {
    super(`certificate_request: ${message}`);
    this.name = 'CsrError';
  }
}

/** Signs kubelet client certificates with the cluster CA, for exactly the name registered to the attested node. */
export class KubeletCertificateSigner {
  private constructor(
    private readonly caCert: x509.X509Certificate,
    private readonly caKey: webcrypto.CryptoKey,
    private readonly algorithm: SignAlgorithm,
  ) {}

  static async fromPem(caCertPem: string, caKeyPem: string): Promise<KubeletCertificateSigner> {
    const key = createPrivateKey(caKeyPem);
    const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
    let algorithm: SignAlgorithm;
    let importAlg: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
    if (key.asymmetricKeyType === 'ec') {
      const curve = key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'P-384' : 'P-256';
      importAlg = { name: 'ECDSA', namedCurve: curve };
      algorithm = { name: 'ECDSA', hash: curve === 'P-384' ? 'SHA-384' : 'SHA-256' };
    } else if (key.asymmetricKeyType === 'rsa') {
      importAlg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
      algorithm = importAlg;
    } else {
      throw new Error(`cluster CA key: unsupported key type ${key.asymmetricKeyType}`);
    }
    const caKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, importAlg, false, ['sign']);
    return new KubeletCertificateSigner(new x509.X509Certificate(caCertPem), caKey, algorithm);
  }

  get caCertDer(): Buffer {
    return Buffer.from(this.caCert.rawData);
  }

  /**
   * Issues a one-year kubelet client certificate for `nodeName` (the name the JoinService registered to the node's
   * EK) and the key the CSR carries, once the CSR's signature proves the requester holds that key. The subject
   * (CN system:node:<nodeName>, O system:nodes) and the SANs (the node name and its address) are the server's: what
   * the CSR asks for is never copied, so no request can name another node.
   */
  async sign(csrDer: Buffer, nodeName: string, nodeAddress: string): Promise<Buffer> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrDer);
    } catch (err) {
      throw new CsrError(`not a DER PKCS#10 request (${(err as Error).message})`);
    }
    if (!(await csr.verify())) throw new CsrError('signature does not verify');
    const names: x509.JsonGeneralName[] = [{ type: 'dns', value: nodeName }];
    if (isIP(nodeAddress)) names.push({ type: 'ip', value: nodeAddress });
    const san = new x509.SubjectAlternativeNameExtension(names);
    const subject = new x509.Name([{ O: ['system:nodes'] }, { CN: [`system:node:${nodeName}`] }]);
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(16)
        .toString('hex')
        .replace(/^[89a-f]/, '1'),
      subject,
      issuer: this.caCert.subjectName,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 365 * 24 * 3600_000),
      publicKey: csr.publicKey,
      signingKey: this.caKey,
      signingAlgorithm: this.algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        san,
      ],
    });
    const der = Buffer.from(cert.rawData);
    // Sanity: what we issue must chain to the CA we hold.
    if (!new X509Certificate(der).verify(new X509Certificate(this.caCertDer).publicKey)) {
      throw new Error('issued kubelet certificate does not verify against the cluster CA');
    }
    return der;
  }
}
