// @tier system: swtpm
// MakeCredential in software, checked by TPMs through a tool no one here wrote: tpm2_activatecredential must
// recover our secret for both EK kinds swtpm_setup manufactures (RSA 2048 and ECC P-384), and the TPM must refuse
// a credential wrapped for another object name.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { kdfa, makeCredential, parseTpmtPublic } from '../../attestation/index.js';
import { type Swtpm, startSwtpm } from '../harness/swtpm.js';

const execFileAsync = promisify(execFile);

describe('makeCredential', () => {
  test('KDFa: counter-mode HMAC with NUL-terminated label, truncated to the requested bits', () => {
    const key = Buffer.alloc(32, 1);
    const a = kdfa('sha256', key, 'STORAGE', Buffer.from('u'), Buffer.alloc(0), 128);
    const b = kdfa('sha256', key, 'STORAGE', Buffer.from('u'), Buffer.alloc(0), 512);
    assert.equal(a.length, 16);
    assert.equal(b.length, 64);
    // bits are part of the input, so a longer output is not an extension of a shorter one
    assert.notDeepEqual(b.subarray(0, 16), a);
  });

  describe('against swtpm via tpm2-tools', { skip: !existsSync('/usr/bin/tpm2_activatecredential') }, () => {
    let swtpm: Swtpm;
    let dir: string;
    let env: NodeJS.ProcessEnv;
    const tools = (cmd: string, args: string[]) => execFileAsync(cmd, args, { env, cwd: dir });

    before(async () => {
      swtpm = await startSwtpm();
      dir = await mkdtemp(join(tmpdir(), 'sextant-credential-'));
      env = { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti, TSS2_LOG: 'all+none' };
    });
    after(async () => {
      await swtpm?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    // the RSA EK (TCG low-range template) is authorised by PolicySecret(endorsement); swtpm's ECC P-384 EK
    // carries userWithAuth, so the (empty) password does
    for (const [kind, ekHandle, policy] of [
      ['RSA 2048', '0x81010001', true],
      ['ECC P-384', '0x81010016', false],
    ] as const) {
      test(`${kind} EK: tpm2_activatecredential recovers the secret; another name is refused`, async () => {
        const ekFile = `ek-${ekHandle}.tss`;
        await tools('tpm2_readpublic', ['-c', ekHandle, '-f', 'tss', '-o', ekFile]);
        const ek = parseTpmtPublic((await readFile(join(dir, ekFile))).subarray(2)); // TPM2B_PUBLIC on disk
        await tools('tpm2_createak', [
          '-C',
          ekHandle,
          '-c',
          'ak.ctx',
          '-G',
          'ecc',
          '-g',
          'sha256',
          '-s',
          'ecdsa',
          '-n',
          'ak.name',
        ]);
        await tools('tpm2_flushcontext', ['-t']);
        const akName = await readFile(join(dir, 'ak.name'));

        const activate = async (name: Buffer) => {
          const secret = randomBytes(32);
          const { credentialBlob, encryptedSecret } = makeCredential(ek, name, secret);
          // tpm2-tools' credential file: magic 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET
          const header = Buffer.alloc(8);
          header.writeUInt32BE(0xbadcc0de, 0);
          header.writeUInt32BE(1, 4);
          await writeFile(join(dir, 'cred.blob'), Buffer.concat([header, credentialBlob, encryptedSecret]));
          await rm(join(dir, 'recovered.bin'), { force: true });
          try {
            const auth: string[] = [];
            if (policy) {
              await tools('tpm2_startauthsession', ['--policy-session', '-S', 'sess.ctx']);
              await tools('tpm2_policysecret', ['-S', 'sess.ctx', '-c', 'e']);
              auth.push('-P', 'session:sess.ctx');
            }
            await tools('tpm2_activatecredential', [
              ...['-c', 'ak.ctx', '-C', ekHandle, '-i', 'cred.blob', '-o', 'recovered.bin'],
              ...auth,
            ]);
            return { secret, recovered: await readFile(join(dir, 'recovered.bin')) };
          } finally {
            await tools('tpm2_flushcontext', ['-t']).catch(() => undefined);
            await tools('tpm2_flushcontext', ['-s']).catch(() => undefined);
          }
        };
        const ok = await activate(akName);
        assert.deepEqual(ok.recovered, ok.secret);
        const otherName = Buffer.concat([akName.subarray(0, 2), randomBytes(akName.length - 2)]);
        await assert.rejects(() => activate(otherName));
      });
    }
  });
});
