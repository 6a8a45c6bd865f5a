// The PCR 11 policy computed without a TPM: PCR 11 as systemd-measure predicts it, the PolicyPCR digest systemd-measure
// signed, policy signatures that verify only for their key/digest/epoch, and every bad input refused by name.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import {
  epochPolicyRef,
  extendPhase,
  policyAuthorizeDigest,
  policyPcrDigest,
  predictPcr11,
  sealingPolicy,
  signingKeyFingerprint,
  signingKeyName,
  signPcr11,
  signPolicy,
  type UkiSection,
  verifyPolicySignature,
} from '../../attestation/pcr-policy.js';

const execFileAsync = promisify(execFile);
const SYSTEMD_MEASURE = '/lib/systemd/systemd-measure';
const PHASES = ['enter-initrd', 'leave-initrd', 'sysinit', 'ready'];

// Recorded from systemd-measure 252 (`sign --phase=enter-initrd` on a swtpm) for these four section files:
// an implementation that is not ours computed this PolicyPCR digest.
const FIXTURE: UkiSection[] = [
  { name: '.linux', content: Buffer.from('kernel\n') },
  { name: '.osrel', content: Buffer.from('ID=test\n') },
  { name: '.cmdline', content: Buffer.from('console=ttyS0\n') },
  { name: '.initrd', content: Buffer.from('initrd\n') },
];
const FIXTURE_PCR11_ENTER_INITRD = 'd07fb7d717248c4be49921da0f86f05aef7dbd0a6c18fc224549dc8a50e838e7';
const FIXTURE_POL_ENTER_INITRD = '55b84cc8c0f9f24ca0301efbb853e9530e3dc74efba3c22cd1f92d8bc57afd9b';

function rsaKey(bits = 2048) {
  return generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 65537 });
}

async function withSections<T>(sections: UkiSection[], fn: (args: string[]) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'sextant-pcr-policy-'));
  try {
    const args: string[] = [];
    for (const s of sections) {
      const file = join(dir, s.name.slice(1));
      await writeFile(file, s.content);
      args.push(`--${s.name.slice(1)}=${file}`);
    }
    return await fn(args);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('PCR 11 prediction', () => {
  const cases: { name: string; sections: UkiSection[] }[] = [
    { name: 'the four fixture sections', sections: FIXTURE },
    {
      name: 'sections given out of order, with .splash and .pcrpkey',
      sections: [
        { name: '.pcrpkey', content: Buffer.from('-----BEGIN PUBLIC KEY-----\n') },
        { name: '.cmdline', content: Buffer.from('root=/dev/vda2 ro') },
        { name: '.linux', content: Buffer.alloc(70_000, 7) },
        { name: '.splash', content: Buffer.from('BM') },
        { name: '.osrel', content: Buffer.from('ID=debian\nVERSION_ID=12\n') },
      ],
    },
    { name: 'a kernel alone', sections: [{ name: '.linux', content: Buffer.from('vmlinuz') }] },
  ];
  for (const c of cases) {
    test(`equals systemd-measure calculate for every phase: ${c.name}`, async () => {
      const { stdout } = await withSections(c.sections, (args) =>
        execFileAsync(SYSTEMD_MEASURE, ['calculate', ...args, '--bank=sha256', '--json=short']),
      );
      const theirs = (JSON.parse(stdout) as { sha256: { phase: string; hash: string }[] }).sha256;
      assert.equal(theirs.length, PHASES.length);
      for (const [i, entry] of theirs.entries()) {
        const phases = PHASES.slice(0, i + 1);
        assert.equal(entry.phase, phases.join(':'));
        assert.equal(predictPcr11(c.sections, phases).toString('hex'), entry.hash, entry.phase);
      }
    });
  }

  test('the phase marker moves PCR 11 off every signed value', () => {
    const enter = predictPcr11(FIXTURE, ['enter-initrd']);
    assert.equal(enter.toString('hex'), FIXTURE_PCR11_ENTER_INITRD);
    const locked = extendPhase(enter, 'sextant-disk-open');
    assert.notDeepEqual(locked, enter);
    assert.deepEqual(extendPhase(predictPcr11(FIXTURE), 'enter-initrd'), enter);
  });

  const bad: { name: string; sections: UkiSection[]; message: RegExp }[] = [
    {
      name: 'an unknown section',
      sections: [{ name: '.text', content: Buffer.alloc(1) }],
      message: /sections\[0\]\.name must be one of \.linux, .* got "\.text"/,
    },
    {
      name: 'a section twice',
      sections: [FIXTURE[0] as UkiSection, FIXTURE[0] as UkiSection],
      message: /sections\[1\]: \.linux appears twice/,
    },
    {
      name: 'content that is not a Buffer',
      sections: [{ name: '.linux', content: 'kernel' as unknown as Buffer }],
      message: /sections\[0\]\.content must be a Buffer/,
    },
  ];
  for (const c of bad) {
    test(`refuses ${c.name}`, () => {
      assert.throws(() => predictPcr11(c.sections), { name: 'TypeError', message: c.message });
    });
  }
});

describe('policy digests', () => {
  test('PolicyPCR(11) equals the digest systemd-measure 252 signed', () => {
    assert.equal(
      policyPcrDigest(Buffer.from(FIXTURE_PCR11_ENTER_INITRD, 'hex')).toString('hex'),
      FIXTURE_POL_ENTER_INITRD,
    );
  });

  test('PolicyAuthorize depends on the key name and the policyRef, not on any PCR value', () => {
    const a = rsaKey().publicKey;
    const b = rsaKey().publicKey;
    const base = policyAuthorizeDigest(signingKeyName(a), epochPolicyRef(1));
    assert.equal(base.length, 32);
    assert.notDeepEqual(policyAuthorizeDigest(signingKeyName(b), epochPolicyRef(1)), base);
    assert.notDeepEqual(policyAuthorizeDigest(signingKeyName(a), epochPolicyRef(2)), base);
    assert.deepEqual(policyAuthorizeDigest(signingKeyName(a), Buffer.from('sextant-pcr11-epoch:1')), base);
    assert.deepEqual(sealingPolicy(a, 1), base);
  });

  const badDigests: { name: string; run: () => unknown; message: RegExp }[] = [
    {
      name: 'a 20-byte PCR value',
      run: () => policyPcrDigest(Buffer.alloc(20)),
      message: /pcr11 must be a 32-byte SHA-256 digest, got 20 bytes/,
    },
    {
      name: 'a string PCR value',
      run: () => policyPcrDigest('00' as unknown as Buffer),
      message: /pcr11 must be a 32-byte .* got string/,
    },
    {
      name: 'a bad previous digest',
      run: () => policyPcrDigest(Buffer.alloc(32), Buffer.alloc(31)),
      message: /previous must be a 32-byte/,
    },
    {
      name: 'a key name without its algorithm',
      run: () => policyAuthorizeDigest(Buffer.alloc(32), Buffer.alloc(0)),
      message: /keyName must be a 34-byte SHA-256 TPM name/,
    },
    {
      name: 'a SHA-1 key name',
      run: () =>
        policyAuthorizeDigest(Buffer.concat([Buffer.from([0, 4]), Buffer.alloc(32)]), Buffer.alloc(0)),
      message: /keyName must be a 34-byte/,
    },
    {
      name: 'a 33-byte policyRef',
      run: () =>
        policyAuthorizeDigest(Buffer.concat([Buffer.from([0, 0x0b]), Buffer.alloc(32)]), Buffer.alloc(33)),
      message: /policyRef must be a Buffer of at most 32 bytes/,
    },
    {
      name: 'a negative epoch',
      run: () => epochPolicyRef(-1),
      message: /epoch must be an integer 0–4294967295, got -1/,
    },
    {
      name: 'a fractional epoch',
      run: () => epochPolicyRef(1.5),
      message: /epoch must be an integer .* got 1\.5/,
    },
    { name: 'a 2^32 epoch', run: () => epochPolicyRef(2 ** 32), message: /got 4294967296/ },
  ];
  for (const c of badDigests) {
    test(`refuses ${c.name}`, () => {
      assert.throws(c.run, { message: c.message });
    });
  }
});

describe('policy signatures', () => {
  const signer = rsaKey();
  const other = rsaKey();
  const pol = policyPcrDigest(predictPcr11(FIXTURE, ['enter-initrd']));
  const ref = epochPolicyRef(3);
  const sig = signPolicy(signer.privateKey, pol, ref);

  const cases: { name: string; key: typeof signer.publicKey; pol: Buffer; ref: Buffer; ok: boolean }[] = [
    { name: 'its key, digest and epoch', key: signer.publicKey, pol, ref, ok: true },
    { name: 'another key', key: other.publicKey, pol, ref, ok: false },
    {
      name: 'another PCR 11 (a new image)',
      key: signer.publicKey,
      pol: policyPcrDigest(Buffer.alloc(32, 1)),
      ref,
      ok: false,
    },
    { name: 'an older epoch', key: signer.publicKey, pol, ref: epochPolicyRef(2), ok: false },
    { name: 'no policyRef', key: signer.publicKey, pol, ref: Buffer.alloc(0), ok: false },
  ];
  for (const c of cases) {
    test(`a signature ${c.ok ? 'verifies' : 'does not verify'} against ${c.name}`, () => {
      assert.equal(verifyPolicySignature(c.key, c.pol, c.ref, sig), c.ok);
    });
  }

  test('signPcr11 writes the .pcrsig entry: systemd fields, our epoch, a signature over pol ‖ policyRef', () => {
    const pcr11 = predictPcr11(FIXTURE, ['enter-initrd']);
    const entry = signPcr11(signer.privateKey, pcr11, 7);
    assert.deepEqual(entry.pcrs, [11]);
    assert.equal(entry.epoch, 7);
    assert.equal(entry.pol, policyPcrDigest(pcr11).toString('hex'));
    assert.equal(entry.pkfp, signingKeyFingerprint(signer.publicKey).toString('hex'));
    assert.ok(
      verifyPolicySignature(
        signer.publicKey,
        policyPcrDigest(pcr11),
        epochPolicyRef(7),
        Buffer.from(entry.sig, 'base64'),
      ),
    );
  });

  const badKeys: { name: string; run: () => unknown; message: RegExp }[] = [
    {
      name: 'an RSA-3072 signing key',
      run: () => signingKeyName(rsaKey(3072).publicKey),
      message: /must be RSA-2048, got rsa 3072/,
    },
    {
      name: 'an ECC key',
      run: () => signingKeyName(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey),
      message: /must be RSA-2048, got ec/,
    },
    {
      name: 'signing a 31-byte digest',
      run: () => signPolicy(signer.privateKey, Buffer.alloc(31), ref),
      message: /approvedPolicy must be a 32-byte/,
    },
    {
      name: 'signing with an ECC key',
      run: () => signPolicy(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, pol, ref),
      message: /signPolicy: the PCR-signing key must be RSA-2048/,
    },
  ];
  for (const c of badKeys) {
    test(`refuses ${c.name}`, () => {
      assert.throws(c.run, { name: 'TypeError', message: c.message });
    });
  }

  test('the key name is the same from PEM, public and private key objects', () => {
    const pem = signer.publicKey.export({ format: 'pem', type: 'spki' }).toString();
    assert.deepEqual(signingKeyName(pem), signingKeyName(signer.publicKey));
    assert.deepEqual(signingKeyName(signer.privateKey), signingKeyName(signer.publicKey));
  });
});
