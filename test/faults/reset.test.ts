// Issue 12 §6: the agent's reset leaves nothing of the cluster that never came to be — cluster secrets and the temp
// file of their atomic write (the master secret), measurements, the JoinService's files, the sealed init reply —
// and keeps the disk ID a JoinService binds the node to.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { removeClusterFiles } from '../../agent/boot/cluster-files.js';

describe('reset removes the cluster files (issue 12 §6)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sextant-reset-faults-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('removes secrets, their temp file, measurements, JoinService files and the init reply; keeps the disk ID', async () => {
    const state = join(dir, 'state');
    await mkdir(join(state, 'joinservice'), { recursive: true });
    for (const f of [
      'cluster-secrets.json',
      'measurements.json',
      'init-reply.json',
      'disk-id',
      'node-state.json',
    ]) {
      await writeFile(join(state, f), 'x', { mode: 0o600 });
    }
    await writeFile(join(state, '.cluster-secrets.json.0123456789ab.tmp'), 'master secret', { mode: 0o600 });
    await writeFile(join(state, 'joinservice/admissions.log'), 'x');
    const removed = await removeClusterFiles(state);
    assert.deepEqual(removed.sort(), [
      '.cluster-secrets.json.0123456789ab.tmp',
      'cluster-secrets.json',
      'init-reply.json',
      'joinservice',
      'measurements.json',
    ]);
    // node-state.json goes through the state store's own clear(); the disk ID stays.
    assert.deepEqual((await readdir(state)).sort(), ['disk-id', 'node-state.json']);
    assert.deepEqual(await removeClusterFiles(state), []);
  });
});
