// @tier system: swtpm
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { openResilientTpm, openTpm, publicKeyFromTpmt, TpmError } from '../../../native/tpm/index.js';
import { startTpmProxy, TPM_CC } from '../../faults/tools/tpm-proxy.js';
import { defer, freshSwtpm, scratch, tpm2 } from './tools.js';

const execFileAsync = promisify(execFile);

function tpm2b(content: Buffer): Buffer {
  const size = Buffer.alloc(2);
  size.writeUInt16BE(content.length);
  return Buffer.concat([size, content]);
}

/** tpm2_makecredential's output file: magic 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. */
function parseCredentialFile(file: Buffer): { blob: Buffer; secret: Buffer } {
  assert.equal(file.readUInt32BE(0), 0xbadcc0de);
  assert.equal(file.readUInt32BE(4), 1);
  const blobEnd = 8 + 2 + file.readUInt16BE(8);
  const blob = file.subarray(8, blobEnd);
  const secret = file.subarray(blobEnd, blobEnd + 2 + file.readUInt16BE(blobEnd));
  return { blob, secret };
}

test('the EK certificate is read from NV, matches the EK and chains to the harness CA', async (t) => {
  const swtpm = await freshSwtpm(t);
  const dir = await scratch(t);
  const tpm = await openTpm(swtpm.tcti);
  defer(t, () => tpm.close());
  const ek = await tpm.readEndorsementKey();
  assert.ok(ek.certificate, 'swtpm_setup --create-ek-cert stores a certificate at 0x01c00002');
  const cert = new X509Certificate(ek.certificate);
  const certKey = cert.publicKey.export({ type: 'spki', format: 'der' });
  assert.deepEqual(publicKeyFromTpmt(ek.public).export({ type: 'spki', format: 'der' }), certKey);

  await writeFile(join(dir, 'ek.pem'), cert.toString());
  await writeFile(join(dir, 'root.pem'), swtpm.ca.rootPem);
  await writeFile(join(dir, 'issuer.pem'), swtpm.ca.issuerPem);
  const { stdout } = await execFileAsync(
    'openssl',
    ['verify', '-CAfile', 'root.pem', '-untrusted', 'issuer.pem', 'ek.pem'],
    { cwd: dir },
  );
  assert.match(stdout, /ek\.pem: OK/);

  // The same EK public as tpm2_readpublic of the persistent handle.
  await tpm2(swtpm, 'tpm2_readpublic', ['-c', '0x81010001', '-o', 'ek.tss', '-f', 'tss'], dir);
  assert.deepEqual(await readFile(join(dir, 'ek.tss')), tpm2b(ek.public));
});

test('without a persistent EK, the TCG template recreates the same EK (and it is flushed on close)', async (t) => {
  const swtpm = await freshSwtpm(t);
  const tpm = await openTpm(swtpm.tcti);
  const persistent = await tpm.readEndorsementKey();
  await tpm.close();
  await tpm2(swtpm, 'tpm2_evictcontrol', ['-C', 'o', '-c', '0x81010001']);
  const again = await openTpm(swtpm.tcti);
  const created = await again.readEndorsementKey();
  assert.deepEqual(created.public, persistent.public);
  await again.close();
  const loaded = await tpm2(swtpm, 'tpm2_getcap', ['handles-transient']);
  assert.equal(loaded.trim(), '', 'no transient object left in the TPM');
});

test('activateCredential recovers a secret from tpm2_makecredential, and refuses one made for another AK', async (t) => {
  const swtpm = await freshSwtpm(t);
  const dir = await scratch(t);
  const tpm = await openTpm(swtpm.tcti);
  defer(t, () => tpm.close());
  const ek = await tpm.readEndorsementKey();
  const ak = await tpm.createAk('ecc');
  await writeFile(join(dir, 'ek.tss'), tpm2b(ek.public));
  const secret = randomBytes(32);
  await writeFile(join(dir, 'secret.bin'), secret);
  const make = async (name: Buffer, out: string) => {
    await tpm2(
      null,
      'tpm2_makecredential',
      [...['-T', 'none', '-e', 'ek.tss', '-s', 'secret.bin'], ...['-n', name.toString('hex'), '-o', out]],
      dir,
    );
    return parseCredentialFile(await readFile(join(dir, out)));
  };
  const good = await make(ak.name, 'good.cred');
  assert.deepEqual(await tpm.activateCredential(ak, ek, good.blob, good.secret), secret);

  const otherName = Buffer.concat([Buffer.from([0x00, 0x0b]), randomBytes(32)]);
  const bad = await make(otherName, 'bad.cred');
  await assert.rejects(tpm.activateCredential(ak, ek, bad.blob, bad.secret), (err: unknown) => {
    assert.ok(err instanceof TpmError);
    assert.match(err.operation, /activateCredential/);
    assert.match(err.rcText, /integrity/);
    return true;
  });
  // Sessions are flushed either way: the AK still quotes, and the TPM has room.
  await tpm.quote(ak, [0], randomBytes(32));
  await assert.rejects(tpm.activateCredential(ak, ek, Buffer.alloc(3), good.secret), TypeError);
});

// Only "nothing is defined at that index" means no EK certificate; a command lost on the way is an error the
// resilient layer retries, never an absent certificate fixed into the agent's identity.
const ekFaults: {
  name: string;
  fault?: { fault: 'drop-command' | 'drop-response'; command: 'NV_ReadPublic' | 'NV_Read' | 'ReadPublic' };
  undefineCertificate?: boolean;
  plain: 'io-failure' | 'no-certificate' | 'certificate';
}[] = [
  { name: 'a TPM with its certificate', plain: 'certificate' },
  {
    name: 'NV index 0x01c00002 not defined (TPM_RC_HANDLE)',
    undefineCertificate: true,
    plain: 'no-certificate',
  },
  {
    name: 'NV_ReadPublic of the certificate index dropped',
    fault: { fault: 'drop-command', command: 'NV_ReadPublic' },
    plain: 'io-failure',
  },
  {
    name: 'NV_ReadPublic answer lost',
    fault: { fault: 'drop-response', command: 'NV_ReadPublic' },
    plain: 'io-failure',
  },
  {
    name: 'NV_Read of the certificate dropped',
    fault: { fault: 'drop-command', command: 'NV_Read' },
    plain: 'io-failure',
  },
  { name: 'NV_Read answer lost', fault: { fault: 'drop-response', command: 'NV_Read' }, plain: 'io-failure' },
  {
    name: 'ReadPublic of the persistent EK dropped',
    fault: { fault: 'drop-command', command: 'ReadPublic' },
    plain: 'io-failure',
  },
];
for (const row of ekFaults) {
  test(`EK read, ${row.name}: a plain context says ${row.plain}; the resilient one reads what the TPM holds`, async (t) => {
    const swtpm = await freshSwtpm(t);
    if (row.undefineCertificate) await tpm2(swtpm, 'tpm2_nvundefine', ['-C', 'p', '0x01c00002']);
    const proxy = await startTpmProxy(swtpm.port);
    defer(t, () => proxy.close());
    const arm = () =>
      row.fault && proxy.arm({ fault: row.fault.fault, commandCode: TPM_CC[row.fault.command] });

    const plain = await openTpm(proxy.tcti);
    defer(t, () => plain.close().catch(() => {}));
    const armed = arm();
    const read = plain.readEndorsementKey();
    if (row.plain === 'io-failure') {
      await assert.rejects(read, (e: unknown) => e instanceof TpmError && /IO failure/.test(e.message));
    } else {
      assert.equal((await read).certificate === null, row.plain === 'no-certificate');
    }
    await armed;

    const fatal: unknown[] = [];
    const resilient = await openResilientTpm(proxy.tcti, { backoffMs: 1, onFatal: (e) => fatal.push(e) });
    defer(t, () => resilient.close());
    const armedAgain = arm();
    const ek = await resilient.readEndorsementKey();
    await armedAgain;
    assert.equal(ek.certificate === null, row.undefineCertificate === true);
    assert.equal(resilient.reopens, row.fault ? 1 : 0);
    assert.deepEqual(fatal, []);
  });
}
