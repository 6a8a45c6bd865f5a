// The kept init reply opens only for its owner: the init secret and the master secret it was sealed to.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  InitReplyStore,
  openInitReply,
  sameOwner,
  sealInitReply,
} from '../../../agent/initserver/init-reply.js';
import { deriveOwnerId } from '../../../common/keys.js';
import { tempDir } from '../../harness/temp-dir.js';

const master = () => ({ key: randomBytes(32), salt: randomBytes(32) });

describe('init reply', () => {
  const dir = tempDir('sextant-init-reply-');

  const owner = master();
  const initSecret = randomBytes(32);
  const success = {
    kubeconfig: Buffer.from('apiVersion: v1\nusers:\n- user:\n    client-key-data: c2VjcmV0\n'),
    clusterId: randomBytes(32),
    ownerId: deriveOwnerId(owner),
    endpoint: '10.0.0.2:6443',
  };

  const table: { name: string; secret: Buffer; master: { key: Buffer; salt: Buffer }; opens: boolean }[] = [
    { name: 'the same owner', secret: initSecret, master: owner, opens: true },
    { name: 'another master secret', secret: initSecret, master: master(), opens: false },
    {
      name: 'the same master secret with another init secret',
      secret: randomBytes(32),
      master: owner,
      opens: false,
    },
  ];
  for (const row of table) {
    it(`${row.opens ? 'opens' : 'does not open'} for ${row.name}`, () => {
      const sealed = sealInitReply(success, initSecret, owner);
      const opened = openInitReply(sealed, row.secret, row.master);
      if (row.opens) assert.deepEqual(opened, success);
      else assert.equal(opened, undefined);
      assert.equal(sameOwner(sealed, row.master), row.master === owner);
    });
  }

  it('a tampered reply does not open', () => {
    const sealed = sealInitReply(success, initSecret, owner);
    const bytes = Buffer.from(sealed.ciphertext, 'base64');
    bytes[0] = (bytes[0] ?? 0) ^ 1;
    assert.equal(
      openInitReply({ ...sealed, ciphertext: bytes.toString('base64') }, initSecret, owner),
      undefined,
    );
  });

  it('is stored 0600, holds no kubeconfig in the clear, and survives a reload', async () => {
    const store = new InitReplyStore(dir);
    assert.equal(await store.load(), undefined);
    await store.save(sealInitReply(success, initSecret, owner));
    assert.equal((await stat(store.path)).mode & 0o777, 0o600);
    const text = await readFile(store.path, 'utf8');
    assert.ok(!text.includes('c2VjcmV0') && !text.includes('client-key-data'));
    const loaded = await store.load();
    assert.ok(loaded);
    assert.deepEqual(openInitReply(loaded, initSecret, owner), success);
    await store.clear();
    assert.equal(await store.load(), undefined);
  });

  it('refuses a malformed stored reply, naming the file and the key, never quoting it', async () => {
    const store = new InitReplyStore(join(dir, 'bad'));
    const sealed = sealInitReply(success, initSecret, owner);
    const cases: [string, RegExp][] = [
      ['{"version":', /^init-reply\.json: not valid JSON$/],
      [JSON.stringify({ ...sealed, tag: undefined }), /^init-reply\.json: tag: expected a string$/],
      [JSON.stringify({ ...sealed, version: 2 }), /^init-reply\.json: version: expected 1$/],
      [JSON.stringify({ ...sealed, extra: 'x' }), /^init-reply\.json: extra: unknown key/],
      [JSON.stringify({ ...sealed, nonce: 5 }), /^init-reply\.json: nonce: expected a string$/],
    ];
    for (const [text, why] of cases) {
      await mkdir(join(dir, 'bad'), { recursive: true });
      await writeFile(store.path, text);
      await assert.rejects(store.load(), (err: Error) => {
        assert.match(err.message, why);
        assert.ok(!err.message.includes(sealed.ciphertext.slice(0, 16)));
        return true;
      });
    }
  });
});
