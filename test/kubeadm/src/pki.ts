import './reflect-shim.js';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  webcrypto,
  X509Certificate,
} from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { writeFileAtomic, writeSecretFile } from './fsutil.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as webcrypto.Crypto);
const subtle = webcrypto.subtle;

export type KeyAlg = 'RSA-2048' | 'RSA-3072' | 'RSA-4096' | 'ECDSA-P256';

export interface KeyPair {
  keys: CryptoKeyPair;
  pem: string; // private key, PKCS#1 (RSA) or SEC1 (EC) as kubeadm writes it
  kind: 'rsa' | 'ec';
}

export interface CertKey extends KeyPair {
  cert: x509.X509Certificate;
  certPem: string;
}

function algParams(kind: 'rsa' | 'ec', bits = 2048) {
  return kind === 'rsa'
    ? {
        gen: {
          name: 'RSASSA-PKCS1-v1_5',
          hash: 'SHA-256',
          publicExponent: new Uint8Array([1, 0, 1]),
          modulusLength: bits,
        },
        imp: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
        sign: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      }
    : {
        gen: { name: 'ECDSA', namedCurve: 'P-256' },
        imp: { name: 'ECDSA', namedCurve: 'P-256' },
        sign: { name: 'ECDSA', hash: 'SHA-256' },
      };
}

export async function generateKey(alg: KeyAlg): Promise<KeyPair> {
  const kind = alg.startsWith('RSA') ? 'rsa' : 'ec';
  const bits = kind === 'rsa' ? Number(alg.slice(4)) : 0;
  const keys = (await subtle.generateKey(algParams(kind, bits).gen, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const der = Buffer.from(await subtle.exportKey('pkcs8', keys.privateKey));
  const pem = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
    .export({ format: 'pem', type: kind === 'rsa' ? 'pkcs1' : 'sec1' })
    .toString();
  return { keys, pem, kind };
}

export async function importKey(pem: string): Promise<KeyPair> {
  const priv = createPrivateKey(pem);
  const kind = priv.asymmetricKeyType === 'rsa' ? 'rsa' : 'ec';
  const p = algParams(kind).imp;
  const privateKey = await subtle.importKey('pkcs8', priv.export({ format: 'der', type: 'pkcs8' }), p, true, [
    'sign',
  ]);
  const publicKey = await subtle.importKey(
    'spki',
    createPublicKey(priv).export({ format: 'der', type: 'spki' }),
    p,
    true,
    ['verify'],
  );
  return { keys: { privateKey, publicKey }, pem, kind };
}

export async function loadCertKey(certPath: string, keyPath: string): Promise<CertKey> {
  const certPem = readFileSync(certPath, 'utf8');
  const kp = await importKey(readFileSync(keyPath, 'utf8'));
  return { ...kp, cert: new x509.X509Certificate(certPem), certPem };
}

export interface CertSpec {
  cn: string;
  org?: string[];
  dns?: string[];
  ips?: string[];
  usage: 'server' | 'client' | 'both';
  validityMs: number;
}

const BACKDATE_MS = 5 * 60_000; // kubeadm backdates NotBefore to tolerate clock skew
const serial = () => {
  const b = randomBytes(8);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
};

function dn(cn: string, org: string[] = []): string {
  const esc = (v: string) => v.replace(/([,+"\\<>;=])/g, '\\$1');
  return [...org.map((o) => `O=${esc(o)}`), `CN=${esc(cn)}`].join(', ');
}

export async function createCA(cn: string, alg: KeyAlg, validityMs: number): Promise<CertKey> {
  const kp = await generateKey(alg);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: dn(cn),
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + validityMs),
    keys: kp.keys,
    signingAlgorithm: algParams(kp.kind).sign,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature |
          x509.KeyUsageFlags.keyEncipherment |
          x509.KeyUsageFlags.keyCertSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(kp.keys.publicKey),
    ],
  });
  return { ...kp, cert, certPem: pemOf(cert) };
}

/** Issues a leaf certificate for `publicKey` (a CSR's key, or a fresh one). */
export async function issue(
  ca: CertKey,
  spec: CertSpec,
  publicKey: CryptoKey,
): Promise<x509.X509Certificate> {
  const now = Date.now();
  const eku =
    spec.usage === 'server'
      ? [x509.ExtendedKeyUsage.serverAuth]
      : spec.usage === 'client'
        ? [x509.ExtendedKeyUsage.clientAuth]
        : [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
  const exts: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
      true,
    ),
    new x509.ExtendedKeyUsageExtension(eku),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
  ];
  const names: x509.JsonGeneralName[] = [
    ...(spec.dns ?? []).map((v) => ({ type: 'dns' as const, value: v })),
    ...(spec.ips ?? []).map((v) => ({ type: 'ip' as const, value: v })),
  ];
  if (names.length > 0) exts.push(new x509.SubjectAlternativeNameExtension(names));
  return x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: dn(spec.cn, spec.org),
    issuer: ca.cert.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(Math.min(now + spec.validityMs, ca.cert.notAfter.getTime())),
    signingKey: ca.keys.privateKey,
    publicKey,
    signingAlgorithm: algParams(ca.kind).sign,
    extensions: exts,
  });
}

export async function createLeaf(ca: CertKey, spec: CertSpec, alg: KeyAlg): Promise<CertKey> {
  const kp = await generateKey(alg);
  const cert = await issue(ca, spec, kp.keys.publicKey);
  return { ...kp, cert, certPem: pemOf(cert) };
}

export function writeCertKey(dir: string, base: string, ck: CertKey): void {
  writeSecretFile(`${dir}/${base}.key`, ck.pem);
  writeFileAtomic(`${dir}/${base}.crt`, ck.certPem, 0o644);
}

export function publicKeyPem(privatePem: string): string {
  return createPublicKey(createPrivateKey(privatePem)).export({ format: 'pem', type: 'spki' }).toString();
}

/** kubeadm's CA pin: "sha256:" + hex SHA-256 of the certificate's DER SubjectPublicKeyInfo. */
export function caCertHash(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ format: 'der', type: 'spki' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/** Splits SANs the way kubeadm's altnames do: IPs by parse, everything else as DNS. */
export function splitSANs(sans: string[]): { dns: string[]; ips: string[] } {
  const dns = new Set<string>();
  const ips = new Set<string>();
  for (const s of sans) (isIP(s) ? ips : dns).add(s);
  return { dns: [...dns], ips: [...ips] };
}

export function fileExists(p: string): boolean {
  return existsSync(p);
}

/** PEM with the trailing newline Go's pem.Encode writes, so concatenated files stay parseable. */
export function pemOf(x: { toString(format: 'pem'): string }): string {
  return `${x.toString('pem').replace(/\r\n/g, '\n').trimEnd()}\n`;
}
