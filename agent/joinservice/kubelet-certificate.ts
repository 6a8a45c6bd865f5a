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

/** Signs kubelet client certificates with the cluster CA, for exactly the node that was attested. */
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
   * Checks the CSR asks for this node's identity only (CN system:node:<name>, O system:nodes, SANs limited to the
   * node name and its address) and is signed by the key it carries, then issues a one-year certificate.
   */
  async sign(csrDer: Buffer, nodeName: string, nodeAddress: string): Promise<Buffer> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrDer);
    } catch (err) {
      throw new CsrError(`not a DER PKCS#10 request (${(err as Error).message})`);
    }
    if (!(await csr.verify())) throw new CsrError('signature does not verify');
    const cn = csr.subjectName.getField('CN');
    const o = csr.subjectName.getField('O');
    if (cn.length !== 1 || cn[0] !== `system:node:${nodeName}`) {
      throw new CsrError(`subject CN must be system:node:${nodeName}, got ${JSON.stringify(cn)}`);
    }
    if (o.length !== 1 || o[0] !== 'system:nodes')
      throw new CsrError(`subject O must be system:nodes, got ${JSON.stringify(o)}`);
    const san = csr.extensions.find(
      (e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension,
    );
    for (const name of san?.names.items ?? []) {
      const ok =
        (name.type === 'dns' && name.value === nodeName) ||
        (name.type === 'ip' && isIP(name.value) && name.value === nodeAddress);
      if (!ok) throw new CsrError(`subject alternative name ${name.type}:${name.value} is not this node's`);
    }
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(16)
        .toString('hex')
        .replace(/^[89a-f]/, '1'),
      subject: csr.subjectName,
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
        ...(san ? [san] : []),
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
