// The master secret wrapped by an AES key inside a real PKCS#11 token (SoftHSM, keys made by OpenSC's
// pkcs11-tool): created wrapped, rotated to a new key version (a higher CKA_ID), refused clearly on bad input.
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { saveConfig } from '../../../cli/config/file.js';
import { defaultQemuConfig } from '../../../cli/config/schema.js';
import { loadOrCreateMasterSecret } from '../../../cli/kms/master-secret.js';
import { parseKmsUri } from '../../../cli/kms/uri.js';
import { WRAPPED_MASTER_SECRET_FILE } from '../../../cli/kms/wrapped-file.js';
import { filesOf, runCliInProcess } from '../../harness/cli.js';
import { createSoftHsm, type SoftHsm } from '../../harness/softhsm.js';

const cli = (dir: string, args: string[], env: NodeJS.ProcessEnv) =>
  runCliInProcess([...args, '--workspace', dir], { env });

describe('kms: PKCS#11 (SoftHSM)', { timeout: 120_000 }, () => {
  let hsm: SoftHsm;
  let root: string;
  let n = 0;
  // SoftHSM reads its token directory from the process environment when the module initializes.
  const savedConf = process.env.SOFTHSM2_CONF;
  const workspace = async (kms?: string) => {
    const dir = join(root, `ws-${n++}`);
    await mkdir(dir);
    if (kms !== undefined) await saveConfig(dir, { ...defaultQemuConfig(), kms });
    return dir;
  };
  const pinEnv = () => ({ SEXTANT_PKCS11_PIN: hsm.pin });

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sextant-kms-pkcs11-'));
    hsm = await createSoftHsm();
    process.env.SOFTHSM2_CONF = hsm.env.SOFTHSM2_CONF;
    await hsm.addKey('master', '01');
    await hsm.addKey('other', '01');
  });
  after(async () => {
    if (savedConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = savedConf;
    await hsm?.remove();
    await rm(root, { recursive: true, force: true });
  });

  test('created wrapped under the token key, unwrapped again; a PIN file works; the PIN is never printed', async () => {
    const dir = await workspace();
    const spec = parseKmsUri(hsm.uri('master'));
    const made = await loadOrCreateMasterSecret(dir, spec, pinEnv());
    assert.equal(made.created, true);
    assert.match(
      made.source,
      /^PKCS#11 key "master" on token "sextant" \(.*libsofthsm2\.so\), key version 01$/,
    );
    assert.deepEqual(await readdir(dir), [WRAPPED_MASTER_SECRET_FILE]);
    assert.equal((await stat(join(dir, WRAPPED_MASTER_SECRET_FILE))).mode & 0o777, 0o600);
    const text = await readFile(join(dir, WRAPPED_MASTER_SECRET_FILE), 'utf8');
    assert.ok(
      !text.includes(made.secret.key.toString('base64')) && !text.includes(made.secret.key.toString('hex')),
    );
    const pinFile = join(root, 'pin');
    await writeFile(pinFile, `${hsm.pin}\n`, { mode: 0o600 });
    const again = await loadOrCreateMasterSecret(
      dir,
      parseKmsUri(`${hsm.uri('master')}&pin-source=${pinFile}`),
      {},
    );
    assert.ok(again.secret.key.equals(made.secret.key) && again.secret.salt.equals(made.secret.salt));
    assert.equal(again.created, false);
  });

  test('a copied workspace without the token is useless: another token with a key of the same label and ID', async () => {
    const dir = await workspace();
    await loadOrCreateMasterSecret(dir, parseKmsUri(hsm.uri('master')), pinEnv());
    const copy = await workspace();
    await cp(dir, copy, { recursive: true });
    await assert.rejects(
      loadOrCreateMasterSecret(copy, parseKmsUri(hsm.uri('master')), {}),
      /no PKCS#11 PIN/,
    );
    const thief = await createSoftHsm();
    const conf = process.env.SOFTHSM2_CONF;
    try {
      process.env.SOFTHSM2_CONF = thief.env.SOFTHSM2_CONF;
      await thief.addKey('master', '01');
      await assert.rejects(
        loadOrCreateMasterSecret(copy, parseKmsUri(thief.uri('master')), { SEXTANT_PKCS11_PIN: thief.pin }),
        /PKCS#11 key "master" on token "sextant" .*does not decrypt under this key/,
      );
    } finally {
      process.env.SOFTHSM2_CONF = conf;
      await thief.remove();
    }
  });

  test('kms rotate rewraps under the new key version (higher CKA_ID), keeps the secret, and is idempotent', async () => {
    await hsm.addKey('rotating', '01');
    const dir = await workspace(hsm.uri('rotating'));
    const made = await loadOrCreateMasterSecret(dir, parseKmsUri(hsm.uri('rotating')), pinEnv());
    const path = join(dir, WRAPPED_MASTER_SECRET_FILE);
    const same = await cli(dir, ['kms', 'rotate'], pinEnv());
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /^unchanged: .*key version 01\)/);
    await hsm.addKey('rotating', '02');
    const r = await cli(dir, ['kms', 'rotate'], pinEnv());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /key version 01 -> PKCS#11 key "rotating" .*key version 02\n$/);
    assert.equal(JSON.parse(await readFile(path, 'utf8')).keyVersion, '02');
    const after = await loadOrCreateMasterSecret(dir, parseKmsUri(hsm.uri('rotating')), pinEnv());
    assert.ok(after.secret.key.equals(made.secret.key) && after.secret.salt.equals(made.secret.salt));
    const v2 = await readFile(path, 'utf8');
    assert.match((await cli(dir, ['kms', 'rotate'], pinEnv())).stdout, /^unchanged/);
    assert.equal(await readFile(path, 'utf8'), v2);
  });

  describe('bad input: one line naming the KMS, the key and what to do; nothing written', () => {
    const flip = async (
      dir: string,
      field: 'ciphertext' | 'keyVersion' | 'key',
      value: (s: string) => string,
    ) => {
      await loadOrCreateMasterSecret(dir, parseKmsUri(hsm.uri('master')), pinEnv());
      const path = join(dir, WRAPPED_MASTER_SECRET_FILE);
      const doc = JSON.parse(await readFile(path, 'utf8'));
      await writeFile(path, JSON.stringify({ ...doc, [field]: value(doc[field]) }), { mode: 0o600 });
    };
    const cases: {
      name: string;
      existing?: (dir: string) => Promise<void>;
      uri: () => string;
      env?: NodeJS.ProcessEnv;
      error: RegExp;
    }[] = [
      {
        name: 'module missing (the "unreachable" of an in-process KMS)',
        uri: () => 'pkcs11:token=sextant;object=master?module-path=/nonexistent/libsofthsm2.so',
        error: /cannot load the module .*; install it \(Debian softhsm2 for SoftHSM\) or fix module-path/,
      },
      {
        name: 'wrong token label',
        uri: () => hsm.uri('master').replace('token=sextant', 'token=sextnat'),
        error: /on token "sextnat" .*no token with this label; initialize it/,
      },
      {
        name: 'wrong key label',
        uri: () => hsm.uri('mastre'),
        error:
          /PKCS#11 key "mastre" .*no AES key with this label and a CKA_ID on the token; create one \(pkcs11-tool --keygen/,
      },
      {
        name: 'wrong PIN (denied)',
        uri: () => hsm.uri('master'),
        env: { SEXTANT_PKCS11_PIN: '000000' },
        error: /login refused \(CKR_PIN_INCORRECT\); give the token's current user PIN/,
      },
      {
        name: 'a blob wrapped by another key (the workspace says so)',
        existing: (dir) => flip(dir, 'ciphertext', (c) => c),
        uri: () => hsm.uri('other'),
        error: /PKCS#11 key "other" .*wrapped by another key \(pkcs11:sextant\/master\)/,
      },
      {
        name: 'a blob of another key relabelled as this key',
        existing: (dir) => flip(dir, 'key', () => 'pkcs11:sextant/other'),
        uri: () => hsm.uri('other'),
        error: /PKCS#11 key "other" .*does not decrypt under this key/,
      },
      {
        name: 'a key version no longer on the token',
        existing: (dir) => flip(dir, 'keyVersion', () => '7f'),
        uri: () => hsm.uri('master'),
        error: /no key version \(CKA_ID\) 7f on the token/,
      },
      {
        name: 'a corrupted ciphertext',
        existing: (dir) =>
          flip(dir, 'ciphertext', (c) => {
            const b = Buffer.from(c, 'base64');
            b[b.length - 3] = (b[b.length - 3] as number) ^ 0x01;
            return b.toString('base64');
          }),
        uri: () => hsm.uri('master'),
        error: /does not decrypt under this key/,
      },
      {
        name: 'a truncated ciphertext',
        existing: (dir) => flip(dir, 'ciphertext', (c) => c.slice(0, 8)),
        uri: () => hsm.uri('master'),
        error: /the wrapped master secret is corrupted/,
      },
      {
        name: 'a PIN in the URI is refused before anything is opened',
        uri: () => `${hsm.uri('master')}&pin-value=1234`,
        error: /"pin-value": the PIN does not belong in the config/,
      },
    ];
    for (const c of cases) {
      test(c.name, async () => {
        const dir = await workspace();
        await c.existing?.(dir);
        const files = () => filesOf(dir);
        const before = await files();
        const env = c.env ?? pinEnv();
        const err = await (async () => loadOrCreateMasterSecret(dir, parseKmsUri(c.uri()), env))().then(
          () => assert.fail('expected a refusal'),
          (e: Error) => e,
        );
        assert.match(err.message, c.error);
        assert.equal(err.message.split('\n').length, 1, 'one line');
        assert.ok(!err.message.includes(env.SEXTANT_PKCS11_PIN as string), 'no PIN');
        assert.deepEqual(await files(), before, 'the workspace is as it was');
      });
    }
  });
});
