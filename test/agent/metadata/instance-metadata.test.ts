import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { loadMetadata, MetadataError } from '../../../agent/metadata/instance-metadata.js';

const good = {
  name: 'worker-0',
  role: 'worker',
  initSecretHash: 'ab'.repeat(32),
  advertiseAddress: '10.0.0.7',
  peers: ['10.0.0.5'],
  joinEndpoints: ['10.0.0.5:30090'],
};

let dir: string;
let server: Server;
let base: string;
/** What the HTTP metadata service answers next: status and body. */
let answer: { status: number; body: string } = { status: 200, body: JSON.stringify(good) };
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sextant-metadata-'));
  server = createServer((_req, res) => {
    res.statusCode = answer.status;
    res.end(answer.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

let seq = 0;
async function fileUrl(content: string): Promise<string> {
  const path = join(dir, `metadata-${seq++}.json`);
  await writeFile(path, content);
  return pathToFileURL(path).href;
}

describe('loadMetadata', () => {
  it('reads a file: URL', async () => {
    const m = await loadMetadata(await fileUrl(JSON.stringify(good)));
    assert.equal(m.name, 'worker-0');
    assert.equal(m.role, 'worker');
    assert.deepEqual(m.joinEndpoints, ['10.0.0.5:30090']);
  });

  it('reads the kubeadm tuning the provider chose, and none when it names none', async () => {
    const tuned = await loadMetadata(await fileUrl(JSON.stringify({ ...good, kubeadmTuning: 'qemu-tcg' })));
    assert.equal(tuned.kubeadmTuning, 'qemu-tcg');
    assert.equal((await loadMetadata(await fileUrl(JSON.stringify(good)))).kubeadmTuning, undefined);
  });

  it('reads an http: URL, anew on every call', async () => {
    answer = { status: 200, body: JSON.stringify(good) };
    assert.deepEqual((await loadMetadata(`${base}/m`)).joinEndpoints, ['10.0.0.5:30090']);
    answer = { status: 200, body: JSON.stringify({ ...good, joinEndpoints: ['10.0.0.6:30090'] }) };
    assert.deepEqual((await loadMetadata(`${base}/m`)).joinEndpoints, ['10.0.0.6:30090']);
  });

  const unreadable: { name: string; url: () => Promise<string>; says: RegExp }[] = [
    {
      name: 'a missing file',
      url: async () => pathToFileURL(join(dir, 'none.json')).href,
      says: /cannot read: .*ENOENT/,
    },
    {
      name: 'an HTTP error',
      url: async () => {
        answer = { status: 503, body: 'busy' };
        return `${base}/m`;
      },
      says: /cannot read: HTTP 503/,
    },
    {
      name: 'an unsupported scheme',
      url: async () => 'ftp://x/metadata',
      says: /unsupported URL scheme ftp: \(expected file, http or https\)/,
    },
  ];
  for (const u of unreadable) {
    it(`says why it cannot read ${u.name}, naming the URL`, async () => {
      const url = await u.url();
      await assert.rejects(loadMetadata(url), (err: Error) => {
        assert.ok(err instanceof MetadataError);
        assert.ok(err.message.includes(url), err.message);
        assert.match(err.message, u.says);
        return true;
      });
    });
  }

  const malformed: { name: string; content: string; key: string }[] = [
    { name: 'not JSON', content: '{', key: 'invalid JSON' },
    {
      name: 'a name that is no DNS label',
      content: JSON.stringify({ ...good, name: 'Worker_0' }),
      key: 'name',
    },
    { name: 'an unknown role', content: JSON.stringify({ ...good, role: 'etcd' }), key: 'role' },
    {
      name: 'a short init secret hash',
      content: JSON.stringify({ ...good, initSecretHash: 'ab' }),
      key: 'initSecretHash',
    },
    {
      name: 'an advertise address that is no IP',
      content: JSON.stringify({ ...good, advertiseAddress: 'host' }),
      key: 'advertiseAddress',
    },
    {
      name: 'join endpoints that are no list',
      content: JSON.stringify({ ...good, joinEndpoints: '10.0.0.5:30090' }),
      key: 'joinEndpoints',
    },
    { name: 'an unknown key', content: JSON.stringify({ ...good, zone: 'a' }), key: 'zone' },
    {
      name: 'a kubeadm tuning no profile has',
      content: JSON.stringify({ ...good, kubeadmTuning: 'kvm' }),
      key: 'kubeadmTuning',
    },
  ];
  for (const m of malformed) {
    it(`refuses metadata with ${m.name}, naming the key`, async () => {
      const url = await fileUrl(m.content);
      await assert.rejects(loadMetadata(url), (err: Error) => {
        assert.ok(err instanceof MetadataError);
        assert.ok(err.message.startsWith(`instance metadata ${url}: `), err.message);
        assert.ok(err.message.includes(m.key), err.message);
        return true;
      });
    });
  }
});
