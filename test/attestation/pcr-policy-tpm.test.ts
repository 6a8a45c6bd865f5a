// @tier system: swtpm
// The TypeScript policy digests equal what a TPM computes in trial sessions (tpm2-tools on swtpm), and the signed
// policy equals `systemd-measure sign` byte for byte (RSASSA-PKCS1-v1_5 is deterministic).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import {
  epochPolicyRef,
  policyAuthorizeDigest,
  policyPcrDigest,
  predictPcr11,
  signingKeyFingerprint,
  signingKeyName,
  signPolicy,
  type UkiSection,
} from '../../attestation/pcr-policy.js';
import { defer, freshSwtpm, scratch, tpm2 } from '../native/tpm/tools.js';

const execFileAsync = promisify(execFile);

test('PolicyPCR(11) and PolicyAuthorize equal tpm2-tools trial sessions for several values and keys', async (t) => {
  const swtpm = await freshSwtpm(t);
  const dir = await scratch(t);
  for (const round of [0, 1, 2]) {
    const pcr11 = round === 0 ? Buffer.alloc(32) : randomBytes(32);
    await writeFile(join(dir, 'pcr.bin'), pcr11);
    await tpm2(swtpm, 'tpm2_startauthsession', ['-S', 'trial.ctx'], dir);
    defer(t, () => tpm2(swtpm, 'tpm2_flushcontext', ['-t']).catch(() => {}));
    await tpm2(
      swtpm,
      'tpm2_policypcr',
      ['-S', 'trial.ctx', '-l', 'sha256:11', '-f', 'pcr.bin', '-L', 'pcr.policy'],
      dir,
    );
    await tpm2(swtpm, 'tpm2_flushcontext', ['trial.ctx'], dir);
    assert.deepEqual(
      await readFile(join(dir, 'pcr.policy')),
      policyPcrDigest(pcr11),
      `PolicyPCR round ${round}`,
    );

    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(join(dir, 'pub.pem'), publicKey.export({ format: 'pem', type: 'spki' }));
    await tpm2(
      swtpm,
      'tpm2_loadexternal',
      [
        '-C',
        'o',
        '-G',
        'rsa',
        '-a',
        'decrypt|sign|userwithauth',
        '-u',
        'pub.pem',
        '-c',
        'key.ctx',
        '-n',
        'key.name',
      ],
      dir,
    );
    await tpm2(swtpm, 'tpm2_flushcontext', ['-t']);
    const name = await readFile(join(dir, 'key.name'));
    assert.deepEqual(name, signingKeyName(publicKey), `key name round ${round}`);
    const ref = epochPolicyRef(round);
    await writeFile(join(dir, 'ref.bin'), ref);
    await tpm2(swtpm, 'tpm2_startauthsession', ['-S', 'trial.ctx'], dir);
    await tpm2(
      swtpm,
      'tpm2_policyauthorize',
      ['-S', 'trial.ctx', '-i', 'pcr.policy', '-q', 'ref.bin', '-n', 'key.name', '-L', 'auth.policy'],
      dir,
    );
    await tpm2(swtpm, 'tpm2_flushcontext', ['trial.ctx'], dir);
    assert.deepEqual(
      await readFile(join(dir, 'auth.policy')),
      policyAuthorizeDigest(name, ref),
      `PolicyAuthorize round ${round}`,
    );
  }
});

test('the signed policy equals systemd-measure sign for the same UKI sections, phase and key', async (t) => {
  const swtpm = await freshSwtpm(t);
  const dir = await scratch(t);
  const sections: UkiSection[] = [
    { name: '.linux', content: randomBytes(4096) },
    { name: '.osrel', content: Buffer.from('ID=sextant\nVERSION_ID=1\n') },
    { name: '.cmdline', content: Buffer.from('console=ttyS0 ro') },
    { name: '.initrd', content: randomBytes(8192) },
  ];
  const args: string[] = [];
  for (const s of sections) {
    await writeFile(join(dir, s.name.slice(1)), s.content);
    args.push(`--${s.name.slice(1)}=${join(dir, s.name.slice(1))}`);
  }
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  await writeFile(join(dir, 'priv.pem'), privateKey.export({ format: 'pem', type: 'pkcs8' }), {
    mode: 0o600,
  });
  await writeFile(join(dir, 'pub.pem'), publicKey.export({ format: 'pem', type: 'spki' }));
  for (const phase of ['enter-initrd', 'enter-initrd:leave-initrd']) {
    const { stdout } = await execFileAsync(
      '/lib/systemd/systemd-measure',
      [
        'sign',
        ...args,
        '--bank=sha256',
        `--private-key=${join(dir, 'priv.pem')}`,
        `--public-key=${join(dir, 'pub.pem')}`,
        `--phase=${phase}`,
        `--tpm2-device=${swtpm.tcti}`,
        '--json=short',
      ],
      { env: { ...process.env, TSS2_LOG: 'all+none' } },
    );
    const entry = (
      JSON.parse(stdout) as { sha256: { pcrs: number[]; pkfp: string; pol: string; sig: string }[] }
    ).sha256[0];
    assert.ok(entry);
    const pol = policyPcrDigest(predictPcr11(sections, phase.split(':')));
    assert.deepEqual(entry.pcrs, [11]);
    assert.equal(entry.pol, pol.toString('hex'), phase);
    assert.equal(entry.pkfp, signingKeyFingerprint(publicKey).toString('hex'));
    // systemd signs with an empty policyRef; ours carries the epoch, over the same primitive.
    assert.equal(entry.sig, signPolicy(privateKey, pol, Buffer.alloc(0)).toString('base64'), phase);
  }
});
