// The master secret wrapped by a real OpenBao transit key (dev server on loopback, started here): created wrapped,
// unwrapped per command, rotated, refused with one clear line for each bad input, and nothing half-written.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { saveConfig } from '../../../cli/config/file.js';
import { defaultQemuConfig } from '../../../cli/config/schema.js';
import { KmsError } from '../../../cli/kms/kms.js';
import { loadOrCreateMasterSecret } from '../../../cli/kms/master-secret.js';
import { type KmsSpec, parseKmsUri } from '../../../cli/kms/uri.js';
import { WRAPPED_MASTER_SECRET_FILE } from '../../../cli/kms/wrapped-file.js';
import { filesOf, runCliInProcess } from '../../harness/cli.js';
import { type OpenBao, startOpenBao } from '../../harness/openbao.js';
import { freePort } from '../../harness/ports.js';

const KEY = 'sextant';
const run = promisify(execFile);

const cli = (dir: string, args: string[], env: NodeJS.ProcessEnv) =>
  runCliInProcess([...args, '--workspace', dir], { env });

/** The refusal is one line matching `error`, says what to do, names no credential, and left `dir` as it was. */
async function assertRefused(dir: string, uri: string, env: NodeJS.ProcessEnv, error: RegExp): Promise<void> {
  const before = await filesOf(dir);
  const err = await loadOrCreateMasterSecret(dir, parseKmsUri(uri), env).then(
    () => assert.fail('expected a refusal'),
    (e: Error) => e,
  );
  assert.match(err.message, error);
  assert.equal(err.message.split('\n').length, 1, 'one line');
  if (err instanceof KmsError) assert.ok(err.message.includes('; '), 'says what to do');
  for (const [name, value] of Object.entries(env)) {
    if (!name.endsWith('_FILE'))
      assert.ok(value === undefined || !err.message.includes(value), 'no credential');
  }
  assert.deepEqual(await filesOf(dir), before, 'the workspace is as it was');
}

describe('kms: OpenBao transit', { timeout: 180_000 }, () => {
  let bao: OpenBao;
  let root: string;
  let token: string;
  let spec: KmsSpec;
  let n = 0;
  const workspace = async (kms?: string) => {
    const dir = join(root, `ws-${n++}`);
    await mkdir(dir);
    if (kms !== undefined) await saveConfig(dir, { ...defaultQemuConfig(), kms });
    return dir;
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sextant-kms-transit-'));
    bao = await startOpenBao();
    await bao.createKey(KEY);
    await bao.createKey('other');
    token = await bao.keyToken(KEY);
    spec = parseKmsUri(bao.uri(KEY));
  });
  after(async () => {
    await bao?.stop();
    await rm(root, { recursive: true, force: true });
  });

  test('created wrapped: only the transit ciphertext is in the workspace, and it unwraps to the same secret', async () => {
    const dir = await workspace();
    const first = await loadOrCreateMasterSecret(dir, spec, { BAO_TOKEN: token });
    assert.equal(first.created, true);
    assert.match(
      first.source,
      /transit key "sextant" \(mount transit\) at http:\/\/127\.0\.0\.1:\d+, key version 1/,
    );
    assert.deepEqual(await readdir(dir), [WRAPPED_MASTER_SECRET_FILE]);
    const path = join(dir, WRAPPED_MASTER_SECRET_FILE);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const text = await readFile(path, 'utf8');
    for (const part of [first.secret.key, first.secret.salt]) {
      assert.ok(
        !text.includes(part.toString('base64')) && !text.includes(part.toString('hex')),
        'no plaintext',
      );
    }
    assert.match(JSON.parse(text).ciphertext, /^vault:v1:/);
    const again = await loadOrCreateMasterSecret(dir, spec, { VAULT_TOKEN: token });
    assert.equal(again.created, false);
    assert.ok(again.secret.key.equals(first.secret.key) && again.secret.salt.equals(first.secret.salt));
  });

  test('a copied workspace without KMS access is useless, also against another server with a key of that name', async () => {
    const dir = await workspace();
    await loadOrCreateMasterSecret(dir, spec, { BAO_TOKEN: token });
    const copy = await workspace();
    await cp(dir, copy, { recursive: true });
    await assert.rejects(loadOrCreateMasterSecret(copy, spec, {}), /no KMS token: set BAO_TOKEN/);
    await assert.rejects(
      loadOrCreateMasterSecret(copy, spec, { BAO_TOKEN: await bao.keyToken('other') }),
      /permission denied for decrypt/,
    );
    const elsewhere = await startOpenBao();
    try {
      await elsewhere.createKey(KEY);
      await assert.rejects(
        loadOrCreateMasterSecret(copy, parseKmsUri(elsewhere.uri(KEY)), { BAO_TOKEN: elsewhere.rootToken }),
        /does not decrypt under this key/,
      );
    } finally {
      await elsewhere.stop();
    }
  });

  test('revoked access locks out later commands, naming the KMS and the key; the token is never printed', async () => {
    const dir = await workspace(bao.uri(KEY));
    const own = await bao.keyToken(KEY);
    await loadOrCreateMasterSecret(dir, spec, { BAO_TOKEN: own });
    const before = await readFile(join(dir, WRAPPED_MASTER_SECRET_FILE));
    await bao.revoke(own);
    const r = await cli(dir, ['kms', 'rotate'], { BAO_TOKEN: own });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^sextant kms rotate: transit key "sextant" \(mount transit\) at http:\/\/127\.0\.0\.1:\d+: permission denied for decrypt .*; get a token allowed to use this key \(BAO_TOKEN\)/,
    );
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.ok(!r.stderr.includes(own) && !r.stdout.includes(own));
    assert.ok((await readFile(join(dir, WRAPPED_MASTER_SECRET_FILE))).equals(before));
  });

  test('kms rotate rewraps under the new key version, keeps the secret, and is idempotent', async () => {
    await bao.createKey('rotating');
    const rotating = parseKmsUri(bao.uri('rotating'));
    const own = await bao.keyToken('rotating');
    const dir = await workspace(bao.uri('rotating'));
    const made = await loadOrCreateMasterSecret(dir, rotating, { BAO_TOKEN: own });
    const path = join(dir, WRAPPED_MASTER_SECRET_FILE);

    const same = await cli(dir, ['kms', 'rotate'], { BAO_TOKEN: own });
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /^unchanged: .*key version 1\)/);

    await bao.rotateKey('rotating');
    const v1 = await readFile(path, 'utf8');
    const r = await cli(dir, ['kms', 'rotate'], { BAO_TOKEN: own });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /key version 1 -> transit key "rotating" .*key version 2\n$/);
    const v2 = await readFile(path, 'utf8');
    assert.notEqual(v1, v2);
    assert.match(JSON.parse(v2).ciphertext, /^vault:v2:/);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const after = await loadOrCreateMasterSecret(dir, rotating, { BAO_TOKEN: own });
    assert.ok(after.secret.key.equals(made.secret.key) && after.secret.salt.equals(made.secret.salt));
    assert.match(after.source, /key version 2$/);

    const again = await cli(dir, ['kms', 'rotate'], { BAO_TOKEN: own });
    assert.equal(again.code, 0);
    assert.match(again.stdout, /^unchanged/);
    assert.equal(await readFile(path, 'utf8'), v2);
  });

  test('kms rotate wraps a plain sextant-mastersecret.json and removes it; the file mode has nothing to rotate', async () => {
    const dir = await workspace('file');
    const plain = await loadOrCreateMasterSecret(dir, { mode: 'file' }, {});
    assert.equal((await cli(dir, ['kms', 'rotate'], {})).code, 1);
    await saveConfig(dir, { ...defaultQemuConfig(), kms: bao.uri(KEY) });
    await assert.rejects(
      loadOrCreateMasterSecret(dir, spec, { BAO_TOKEN: token }),
      /run "sextant kms rotate" to wrap it/,
    );
    const r = await cli(dir, ['kms', 'rotate'], { BAO_TOKEN: token });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /sextant-mastersecret\.json \(plain\) -> transit key "sextant"/);
    assert.deepEqual((await readdir(dir)).sort(), ['sextant-conf.yaml', WRAPPED_MASTER_SECRET_FILE]);
    const wrapped = await loadOrCreateMasterSecret(dir, spec, { BAO_TOKEN: token });
    assert.ok(wrapped.secret.key.equals(plain.secret.key));
    await assert.rejects(
      loadOrCreateMasterSecret(dir, { mode: 'file' }, {}),
      /set kms back to the URI of that key/,
    );
  });

  describe('bad input: one line naming the KMS, the key and what to do; nothing written', () => {
    const cases: {
      name: string;
      /** A workspace the case starts from (blob made with the good token), or none for a fresh one. */
      existing?: (dir: string) => Promise<void>;
      uri: () => Promise<string> | string;
      env: () => Promise<NodeJS.ProcessEnv> | NodeJS.ProcessEnv;
      error: RegExp;
    }[] = [
      {
        name: 'unreachable KMS',
        uri: async () => `transit+http://127.0.0.1:${await freePort()}/transit/${KEY}`,
        env: () => ({ BAO_TOKEN: token }),
        error: /unreachable \(ECONNREFUSED\); start the server or fix the address/,
      },
      {
        name: 'wrong key name (the token may use another key only)',
        uri: () => bao.uri('sextnat'),
        env: () => ({ BAO_TOKEN: token }),
        error: /transit key "sextnat" .*permission denied for encrypt .*check the key name in the kms URI/,
      },
      {
        name: 'no such key (a token that could use any key)',
        existing: async (dir) => {
          await loadOrCreateMasterSecret(dir, parseKmsUri(bao.uri(KEY)), { BAO_TOKEN: token });
          const path = join(dir, WRAPPED_MASTER_SECRET_FILE);
          const doc = JSON.parse(await readFile(path, 'utf8'));
          await writeFile(path, JSON.stringify({ ...doc, key: 'transit:transit/gone' }), { mode: 0o600 });
        },
        uri: () => bao.uri('gone'),
        env: () => ({ BAO_TOKEN: bao.rootToken }),
        error: /transit key "gone" .*: no such key; create it \(bao write -f transit\/keys\/gone\)/,
      },
      {
        name: 'a mount with no transit engine (HTTP 404)',
        uri: () => `transit+${bao.address}/nomount/${KEY}`,
        env: () => ({ BAO_TOKEN: bao.rootToken }),
        error:
          /transit key "sextant" \(mount nomount\) .*: no transit engine at mount "nomount"; enable it \(bao secrets enable transit\)/,
      },
      {
        name: 'an https URI for a server that speaks plain http',
        uri: () => bao.uri(KEY).replace('transit+http:', 'transit+https:'),
        env: () => ({ BAO_TOKEN: token }),
        error: /at https:\/\/127\.0\.0\.1:\d+: no TLS handshake \(.*\); check that the server speaks https/,
      },
      {
        name: 'denied permission (encrypt allowed, decrypt not)',
        uri: () => bao.uri(KEY),
        env: async () => ({ BAO_TOKEN: await bao.keyToken(KEY, ['encrypt']) }),
        error: /permission denied for decrypt/,
      },
      {
        name: 'no token at all',
        uri: () => bao.uri(KEY),
        env: () => ({}),
        error: /no KMS token: set BAO_TOKEN \(or VAULT_TOKEN\), or SEXTANT_KMS_TOKEN_FILE/,
      },
      {
        name: 'a token file others may read',
        uri: () => bao.uri(KEY),
        env: async () => {
          const file = join(root, `token-${n++}`);
          await writeFile(file, `${token}\n`, { mode: 0o644 });
          return { SEXTANT_KMS_TOKEN_FILE: file };
        },
        error: /SEXTANT_KMS_TOKEN_FILE file .*: readable by others \(mode 644\); chmod 600 it/,
      },
      {
        name: 'a blob wrapped by another key (the workspace says so)',
        existing: async (dir) => {
          await loadOrCreateMasterSecret(dir, parseKmsUri(bao.uri(KEY)), { BAO_TOKEN: token });
        },
        uri: () => bao.uri('other'),
        env: () => ({ BAO_TOKEN: bao.rootToken }),
        error:
          /transit key "other" .*wrapped by another key \(transit:transit\/sextant\); set kms in sextant-conf.yaml back/,
      },
      {
        name: 'a blob of another key relabelled as this key',
        existing: async (dir) => {
          await loadOrCreateMasterSecret(dir, parseKmsUri(bao.uri(KEY)), { BAO_TOKEN: token });
          const path = join(dir, WRAPPED_MASTER_SECRET_FILE);
          const doc = JSON.parse(await readFile(path, 'utf8'));
          await writeFile(path, JSON.stringify({ ...doc, key: 'transit:transit/other' }), { mode: 0o600 });
        },
        uri: () => bao.uri('other'),
        env: () => ({ BAO_TOKEN: bao.rootToken }),
        error:
          /transit key "other" .*does not decrypt under this key .*; restore sextant-mastersecret\.wrapped\.json/,
      },
      {
        name: 'a corrupted ciphertext',
        existing: async (dir) => {
          await loadOrCreateMasterSecret(dir, spec, { BAO_TOKEN: token });
          const path = join(dir, WRAPPED_MASTER_SECRET_FILE);
          const doc = JSON.parse(await readFile(path, 'utf8'));
          const c: string = doc.ciphertext;
          const i = c.length - 10;
          const flipped = `${c.slice(0, i)}${c[i] === 'A' ? 'B' : 'A'}${c.slice(i + 1)}`;
          await writeFile(path, JSON.stringify({ ...doc, ciphertext: flipped }), { mode: 0o600 });
        },
        uri: () => bao.uri(KEY),
        env: () => ({ BAO_TOKEN: token }),
        error: /does not decrypt under this key/,
      },
      {
        name: 'a corrupted file',
        existing: async (dir) => {
          await writeFile(join(dir, WRAPPED_MASTER_SECRET_FILE), '{"version": 1, "key": ', { mode: 0o600 });
        },
        uri: () => bao.uri(KEY),
        env: () => ({ BAO_TOKEN: token }),
        error:
          /^sextant-mastersecret\.wrapped\.json: not valid JSON \(the file is corrupt; restore it from a backup\)$/,
      },
    ];
    for (const c of cases) {
      test(c.name, async () => {
        const dir = await workspace();
        await c.existing?.(dir);
        await assertRefused(dir, await c.uri(), await c.env(), c.error);
      });
    }
  });

  describe('over TLS (https, the test CA of OpenBao -dev-tls) and sealed', () => {
    let tls: OpenBao;
    let tlsToken: string;
    let otherCa: string;
    before(async () => {
      tls = await startOpenBao({ tls: true });
      await tls.createKey(KEY);
      tlsToken = await tls.keyToken(KEY);
      otherCa = join(root, 'other-ca.pem');
      await run('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-subj',
        '/CN=not the KMS CA',
        '-days',
        '1',
        '-keyout',
        join(root, 'other-ca.key'),
        '-out',
        otherCa,
      ]);
    });
    after(async () => {
      await tls?.stop();
    });

    test('https with ca-file: created wrapped and unwrapped again, only the ciphertext kept', async () => {
      const dir = await workspace();
      const tlsSpec = parseKmsUri(tls.uri(KEY));
      assert.equal(tlsSpec.mode === 'transit' && tlsSpec.caFile, tls.caFile);
      const made = await loadOrCreateMasterSecret(dir, tlsSpec, { BAO_TOKEN: tlsToken });
      assert.equal(made.created, true);
      assert.match(made.source, /at https:\/\/127\.0\.0\.1:\d+, key version 1$/);
      assert.deepEqual(await readdir(dir), [WRAPPED_MASTER_SECRET_FILE]);
      const again = await loadOrCreateMasterSecret(dir, tlsSpec, { BAO_TOKEN: tlsToken });
      assert.ok(again.secret.key.equals(made.secret.key) && again.secret.salt.equals(made.secret.salt));
    });

    const refusals: { name: string; existing: boolean; uri: () => string; error: () => RegExp }[] = [
      {
        name: 'a ca-file of another CA',
        existing: true,
        uri: () => tls.uri(KEY, otherCa),
        error: () =>
          new RegExp(
            `transit key "sextant" \\(mount transit\\) at https://127\\.0\\.0\\.1:\\d+: the server's TLS certificate does not verify against ca-file ${otherCa.replace(/[.]/g, '\\.')} \\([A-Z_]+\\); set ca-file in the kms URI to the CA that issued`,
          ),
      },
      {
        name: "no ca-file: the system's CAs do not know the test CA",
        existing: false,
        uri: () => `transit+${tls.address}/transit/${KEY}`,
        error: () => /does not verify against the system's CAs \([A-Z_]+\); set ca-file in the kms URI/,
      },
    ];
    for (const c of refusals) {
      test(`refused: ${c.name}`, async () => {
        const dir = await workspace();
        if (c.existing)
          await loadOrCreateMasterSecret(dir, parseKmsUri(tls.uri(KEY)), { BAO_TOKEN: tlsToken });
        await assertRefused(dir, c.uri(), { BAO_TOKEN: tlsToken }, c.error());
      });
    }

    test('a sealed server refuses unwrap and create alike, saying to unseal it; nothing written', async () => {
      const existing = await workspace();
      await loadOrCreateMasterSecret(existing, parseKmsUri(tls.uri(KEY)), { BAO_TOKEN: tlsToken });
      await tls.seal();
      const sealed =
        /^transit key "sextant" \(mount transit\) at https:\/\/127\.0\.0\.1:\d+: the server is sealed or not ready; unseal it \(bao operator unseal\) and run the command again$/;
      await assertRefused(existing, tls.uri(KEY), { BAO_TOKEN: tlsToken }, sealed);
      await assertRefused(await workspace(), tls.uri(KEY), { BAO_TOKEN: tlsToken }, sealed);
    });
  });

  test('config generate --kms writes the URI; a URI with a credential is refused and nothing is written', async () => {
    const dir = await workspace();
    const ok = await cli(dir, ['config', 'generate', 'qemu', '--kms', bao.uri(KEY)], {});
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(
      await readFile(join(dir, 'sextant-conf.yaml'), 'utf8'),
      new RegExp(`\\nkms: transit\\+${bao.address.replace(/[.:/]/g, '\\$&')}/transit/sextant\\n`),
    );
    const bad = await workspace();
    const r = await cli(
      bad,
      ['config', 'generate', 'qemu', '--kms', 'transit+http://me:s3cret@127.0.0.1:1/transit/k'],
      {},
    );
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--kms: credentials do not belong in the config/);
    assert.ok(!r.stderr.includes('s3cret'));
    assert.deepEqual(await readdir(bad), []);
  });
});
