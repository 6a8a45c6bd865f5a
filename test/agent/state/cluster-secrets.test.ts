import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  type ClusterSecrets,
  ClusterSecretsStore,
  serializeClusterSecrets,
} from '../../../agent/state/cluster-secrets.js';
import { tempDir } from '../../harness/temp-dir.js';
import { fakeClusterSecrets, kubeadmComponent } from '../fakes.js';

const dir = tempDir('sextant-cluster-secrets-');

function secrets(): ClusterSecrets {
  return fakeClusterSecrets({
    measurements: '{"15":{"expected":"00","warnOnly":true}}',
    components: [kubeadmComponent()],
  });
}

describe('ClusterSecretsStore', () => {
  it('holds nothing on a node that never had secrets', async () => {
    assert.equal(await new ClusterSecretsStore(join(dir, 'none')).load(), null);
  });

  it('saves 0600 and loads the same secrets back; the bytes are what a control-plane joiner receives', async () => {
    const store = new ClusterSecretsStore(join(dir, 'rt'));
    const s = secrets();
    await store.save(s);
    assert.deepEqual(await store.load(), s);
    assert.equal((await stat(store.path)).mode & 0o777, 0o600);
    assert.equal(store.readFileSync().toString('utf8'), serializeClusterSecrets(s));
    assert.ok(store.path.endsWith('/cluster-secrets.json'));
  });

  it('adopts the file of a control-plane ticket: parsed, then stored as its own', async () => {
    const store = new ClusterSecretsStore(join(dir, 'adopt'));
    const s = secrets();
    assert.deepEqual(await store.adopt(Buffer.from(serializeClusterSecrets(s))), s);
    assert.deepEqual(await store.load(), s);
  });

  it("adopts the inventory serial a control-plane ticket carries (the serving JoinService's floor)", async () => {
    const store = new ClusterSecretsStore(join(dir, 'adopt-serial'));
    const s = { ...secrets(), inventorySerial: 4 };
    assert.equal((await store.adopt(Buffer.from(serializeClusterSecrets(s)))).inventorySerial, 4);
    assert.deepEqual(await store.load(), s);
  });

  const malformed: { name: string; text: string; error: RegExp }[] = [
    {
      name: 'with a negative inventory serial',
      text: JSON.stringify({ ...JSON.parse(serializeClusterSecrets(secrets())), inventorySerial: -1 }),
      error: /inventorySerial: expected an inventory serial \(a non-negative integer\)/,
    },
    { name: 'not JSON', text: '{"masterSecret":', error: /not valid JSON/ },
    {
      name: 'no master secret',
      text: '{"measurementSalt":"AA=="}',
      error: /masterSecret: expected a mapping/,
    },
    {
      name: 'no measurement salt',
      text: JSON.stringify({ ...JSON.parse(serializeClusterSecrets(secrets())), measurementSalt: undefined }),
      error: /measurementSalt: expected base64 of 32 bytes$/,
    },
    {
      name: 'without measurements (nobody could be admitted)',
      text: JSON.stringify({ ...JSON.parse(serializeClusterSecrets(secrets())), measurements: undefined }),
      error: /measurements: expected the measurements \(JSON text\)$/,
    },
    {
      name: 'a short master key',
      text: JSON.stringify({
        ...JSON.parse(serializeClusterSecrets(secrets())),
        masterSecret: { key: 'AA==', salt: 'AA==' },
      }),
      error: /masterSecret\.key: expected base64 of 32 bytes$/,
    },
  ];
  for (const m of malformed) {
    it(`refuses a ticket file that is ${m.name} and keeps the stored secrets`, async () => {
      const store = new ClusterSecretsStore(join(dir, `bad-${m.name.replace(/\W+/g, '-')}`));
      const s = secrets();
      await store.save(s);
      await assert.rejects(store.adopt(Buffer.from(m.text)), (err: Error) => {
        assert.match(err.message, m.error);
        assert.match(err.message, /^join ticket cluster_secrets: /);
        return true;
      });
      assert.deepEqual(await store.load(), s);
    });
  }

  it('names the file and never echoes its content when the stored file is broken', async () => {
    const store = new ClusterSecretsStore(join(dir, 'broken'));
    await mkdir(join(dir, 'broken'), { recursive: true });
    const secretText = 'not-json-but-a-secret-4f1c';
    await writeFile(store.path, secretText);
    await assert.rejects(store.load(), (err: Error) => {
      assert.ok(err.message.startsWith(store.path));
      assert.ok(!err.message.includes(secretText));
      return true;
    });
    assert.equal(await readFile(store.path, 'utf8'), secretText);
  });

  it('passes a read error other than a missing file on', async () => {
    const store = new ClusterSecretsStore(join(dir, 'isdir'));
    await mkdir(store.path, { recursive: true });
    await assert.rejects(store.load(), /EISDIR/);
  });
});
