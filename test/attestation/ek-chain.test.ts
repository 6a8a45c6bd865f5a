// @tier system: swtpm
// EK certificate policy: only a leaf certificate with the EK extended key usage, for a key made from a TCG EK
// template, identifies a TPM. Certificates are issued here by a test CA for the real swtpm EK (or a software key),
// so each case differs from the accepted one in exactly the property under test.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { checkEkTemplate } from '../../attestation/ek-chain.js';
import {
  type AttesterIdentity,
  createChallenge,
  createTrust,
  parseTpmtPublic,
  type Trust,
} from '../../attestation/index.js';
import { type Attester, failsAt, startAttester } from './helpers.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]) };

interface TestCa {
  pem: string;
  keys: webcrypto.CryptoKeyPair;
  cert: x509.X509Certificate;
}

async function makeCa(name: string): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey({ ...RSA, modulusLength: 2048 }, false, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${name}`,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 3600_000),
    keys,
    signingAlgorithm: RSA,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });
  return { pem: cert.toString('pem'), keys, cert };
}

/** A leaf for `spkiDer` signed by `ca`, with the given EKUs (none: no extension) and CA flag. */
async function issue(
  ca: TestCa,
  spkiDer: Buffer,
  options: { eku?: string[]; ca?: boolean } = {},
): Promise<Buffer> {
  const publicKey = await webcrypto.subtle.importKey('spki', spkiDer, { ...RSA }, true, ['verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: 'CN=ek',
    issuer: ca.cert.subject,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 3600_000),
    publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: RSA,
    extensions: [
      new x509.BasicConstraintsExtension(options.ca ?? false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyEncipherment, true),
      ...(options.eku ? [new x509.ExtendedKeyUsageExtension(options.eku)] : []),
    ],
  });
  return Buffer.from(cert.rawData);
}

/** The EK public area with its objectAttributes (bytes 4..8) or authPolicy rewritten. */
function withAttributes(ekPublic: Buffer, set: number, clear: number): Buffer {
  const out = Buffer.from(ekPublic);
  out.writeUInt32BE(((out.readUInt32BE(4) | set) & ~clear) >>> 0, 4);
  return out;
}

describe('EK certificate policy', () => {
  let node: Attester;
  let identity: AttesterIdentity;
  let ekSpki: Buffer;
  let ca: TestCa;
  let trust: Trust;
  /** the accepted certificate: a leaf with the EK EKU for the TPM's EK */
  let good: Buffer;

  before(async () => {
    node = await startAttester();
    identity = node.issuer.identity();
    ekSpki = parseTpmtPublic(identity.ekPublic).key.export({ type: 'spki', format: 'der' });
    ca = await makeCa('test EK CA');
    trust = createTrust({ ekCaCertificates: [ca.pem] });
    good = await issue(ca, ekSpki, { eku: ['2.23.133.8.1'] });
  });
  after(async () => {
    await node?.stop();
  });

  const challenge = (ekCertificate: Buffer, t = trust, ekPublic = identity.ekPublic) =>
    createChallenge({ ...identity, ekCertificate, ekPublic }, t);

  test('swtpm_setup + swtpm_localca certificates pass: EKU 2.23.133.8.1, CA:FALSE, template L-1', () => {
    const swtpmTrust = createTrust({ ekCaCertificates: [node.swtpm.ca.rootPem, node.swtpm.ca.issuerPem] });
    assert.doesNotThrow(() => createChallenge(identity, swtpmTrust));
    assert.doesNotThrow(() => checkEkTemplate(parseTpmtPublic(identity.ekPublic)));
  });

  test('a leaf with the EK EKU for the TPM EK is accepted', () => {
    assert.doesNotThrow(() => challenge(good));
  });

  const refusals: Array<{ name: string; options: { eku?: string[]; ca?: boolean }; message: RegExp }> = [
    {
      name: 'no extended key usage at all',
      options: {},
      message: /no extended key usage; required 2\.23\.133\.8\.1/,
    },
    {
      name: 'another extended key usage (serverAuth)',
      options: { eku: ['1.3.6.1.5.5.7.3.1'] },
      message: /lacks 2\.23\.133\.8\.1/,
    },
    {
      name: 'a CA certificate (CA:TRUE) even with the EKU',
      options: { eku: ['2.23.133.8.1'], ca: true },
      message: /CA:TRUE/,
    },
  ];
  for (const { name, options, message } of refusals) {
    test(`refused: ${name}`, async () => {
      const cert = await issue(ca, ekSpki, options);
      assert.throws(() => challenge(cert), failsAt('ek-chain', message));
    });
  }

  test('a per-CA opt-out admits EKU-less leaves of that CA only', async () => {
    const other = await makeCa('other EK CA');
    const optedOut = createTrust({ ekCaCertificates: [ca.pem, other.pem], ekuOptionalFor: [ca.pem] });
    const fromOptedOut = await issue(ca, ekSpki);
    const fromOther = await issue(other, ekSpki);
    const caLeaf = await issue(ca, ekSpki, { ca: true });
    assert.doesNotThrow(() => challenge(fromOptedOut, optedOut));
    assert.throws(() => challenge(fromOther, optedOut), failsAt('ek-chain', /no extended key usage/));
    // the opt-out never makes a CA certificate an EK
    assert.throws(() => challenge(caLeaf, optedOut), failsAt('ek-chain', /CA:TRUE/));
    // and an opt-out for a CA that is not trusted is a configuration error
    assert.throws(
      () => createTrust({ ekCaCertificates: [ca.pem], ekuOptionalFor: [other.pem] }),
      failsAt('config'),
    );
  });

  test('no TPM at all: a certificate for a software key without the EK EKU is refused', async () => {
    const soft = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const softCert = await issue(ca, soft.publicKey.export({ type: 'spki', format: 'der' }));
    assert.throws(() => challenge(softCert), failsAt('ek-chain', /extended key usage/));
  });

  const TPMA = {
    fixedTPM: 0x2,
    fixedParent: 0x10,
    userWithAuth: 0x40,
    adminWithPolicy: 0x80,
    restricted: 0x10000,
    decrypt: 0x20000,
    sign: 0x40000,
  };
  const templates: Array<{ name: string; ekPublic: () => Buffer; message: RegExp }> = [
    {
      name: 'not restricted',
      ekPublic: () => withAttributes(identity.ekPublic, 0, TPMA.restricted),
      message: /lack restricted/,
    },
    {
      name: 'not decrypt',
      ekPublic: () => withAttributes(identity.ekPublic, 0, TPMA.decrypt),
      message: /lack decrypt/,
    },
    {
      name: 'not fixedTPM (duplicable)',
      ekPublic: () => withAttributes(identity.ekPublic, 0, TPMA.fixedTPM),
      message: /lack fixedTPM/,
    },
    {
      name: 'not fixedParent',
      ekPublic: () => withAttributes(identity.ekPublic, 0, TPMA.fixedParent),
      message: /lack fixedParent/,
    },
    {
      name: 'a signing key',
      ekPublic: () => withAttributes(identity.ekPublic, TPMA.sign, 0),
      message: /include sign/,
    },
    {
      name: 'usable with a password (userWithAuth under PolicyA)',
      ekPublic: () => withAttributes(identity.ekPublic, TPMA.userWithAuth, 0),
      message: /userWithAuth is set/,
    },
    {
      name: 'another auth policy',
      ekPublic: () => {
        const out = Buffer.from(identity.ekPublic);
        out[10] = out[10]! ^ 0xff; // first byte of the 32-byte authPolicy (after type, nameAlg, attributes, size)
        return out;
      },
      message: /none of the standard EK policies/,
    },
  ];
  for (const { name, ekPublic, message } of templates) {
    test(`EK public refused against the TCG templates: ${name}`, () => {
      // the certificate certifies the same RSA key: only the public area's template differs
      assert.throws(() => challenge(good, trust, ekPublic()), failsAt('ek-chain', message));
    });
  }
});
