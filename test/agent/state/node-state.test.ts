import assert from 'node:assert/strict';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NodeStateError, NodeStateStore } from '../../../agent/state/node-state.js';
import { tempDir } from '../../harness/temp-dir.js';

const dir = tempDir('sextant-node-state-');

const good = {
  phase: 'bootstrapped' as const,
  role: 'worker' as const,
  origin: 'join' as const,
  clusterId: 'ab'.repeat(32),
  measurementSalt: 'cd'.repeat(32),
  diskUuid: '3b0b8c2e-2c2a-4a0e-9f7e-0d7b1b6f0a11',
};

describe('NodeStateStore', () => {
  it('has no state on a fresh node', async () => {
    assert.equal(await new NodeStateStore(join(dir, 'fresh')).load(), null);
  });

  it('saves 0600, stamps the time from its clock, and loads what it saved', async () => {
    const store = new NodeStateStore(join(dir, 'rt'), () => new Date(Date.UTC(2026, 0, 2)));
    const saved = await store.save(good);
    assert.equal(saved.updatedAt, '2026-01-02T00:00:00.000Z');
    assert.deepEqual(await store.load(), { version: 1, ...good, updatedAt: '2026-01-02T00:00:00.000Z' });
    assert.equal((await stat(store.path)).mode & 0o777, 0o600);
    await store.save({ ...good, phase: 'reset-required', failedStep: 'kubeadm-join' });
    assert.equal((await store.load())?.failedStep, 'kubeadm-join');
  });

  it('clear removes the state, and clearing twice is fine', async () => {
    const store = new NodeStateStore(join(dir, 'clear'));
    await store.save(good);
    await store.clear();
    await store.clear();
    assert.equal(await store.load(), null);
  });

  it('refuses to save a state it could not load back, writing nothing', async () => {
    const store = new NodeStateStore(join(dir, 'bad-save'));
    await assert.rejects(store.save({ ...good, clusterId: 'nope' }), /clusterId: expected 64 hex/);
    assert.equal(await store.load(), null);
  });

  const broken: { name: string; content: string; error: RegExp }[] = [
    { name: 'not JSON', content: '{', error: /invalid JSON/ },
    { name: 'not an object', content: '[]', error: /version: expected 1|expected a JSON object/ },
    { name: 'wrong version', content: JSON.stringify({ ...good, version: 2 }), error: /version: expected 1/ },
    {
      name: 'unknown phase',
      content: JSON.stringify({ version: 1, ...good, phase: 'done', updatedAt: 'x' }),
      error: /phase: expected one of initializing, joining, bootstrapped, reset-required/,
    },
    {
      name: 'unknown role',
      content: JSON.stringify({ version: 1, ...good, role: 'etcd', updatedAt: 'x' }),
      error: /role: expected control-plane or worker/,
    },
    {
      name: 'unknown origin',
      content: JSON.stringify({ version: 1, ...good, origin: 'magic', updatedAt: 'x' }),
      error: /origin: expected one of init, join/,
    },
    {
      name: 'failed at a step no bootstrap runs',
      content: JSON.stringify({
        version: 1,
        ...good,
        phase: 'reset-required',
        failedStep: 'kubeadm-innit',
        updatedAt: 'x',
      }),
      error: /failedStep: expected one of persist-state, install-components, .*kubeadm-init/,
    },
    {
      name: 'cluster ID not hex',
      content: JSON.stringify({ version: 1, ...good, clusterId: 'zz', updatedAt: 'x' }),
      error: /clusterId: expected 64 hex characters/,
    },
    {
      name: 'measurement salt too short',
      content: JSON.stringify({ version: 1, ...good, measurementSalt: 'ab', updatedAt: 'x' }),
      error: /measurementSalt: expected 64 hex characters/,
    },
    {
      name: 'disk UUID missing',
      content: JSON.stringify({ version: 1, ...good, diskUuid: undefined, updatedAt: 'x' }),
      error: /diskUuid: expected a UUID/,
    },
    {
      name: 'timestamp missing',
      content: JSON.stringify({ version: 1, ...good }),
      error: /updatedAt: expected an ISO timestamp/,
    },
  ];
  for (const b of broken) {
    it(`refuses a state file that is ${b.name}, naming the file and the key`, async () => {
      const store = new NodeStateStore(join(dir, `broken-${b.name.replace(/\W+/g, '-')}`));
      await store.save(good);
      await writeFile(store.path, b.content);
      await assert.rejects(store.load(), (err: Error) => {
        assert.ok(err instanceof NodeStateError, err.message);
        assert.ok(err.message.startsWith(store.path), err.message);
        assert.match(err.message, b.error);
        return true;
      });
      assert.equal(await readFile(store.path, 'utf8'), b.content, 'a refused file is left for the operator');
    });
  }

  it('passes a read error other than a missing file on', async () => {
    const store = new NodeStateStore(join(dir, 'dir-instead'));
    await store.save(good);
    await rm(store.path);
    await (await import('node:fs/promises')).mkdir(store.path);
    await assert.rejects(store.load(), /EISDIR/);
  });
});
