// Issue 12 §6: the agent's reset leaves nothing of the cluster that never came to be — cluster secrets and the temp
// file of their atomic write (the master secret), measurements, the JoinService's files, the sealed init reply —
// and keeps the disk ID a JoinService binds the node to.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { removeClusterFiles } from '../../agent/boot/cluster-files.js';
import { resetStaleBootstrap } from '../../agent/boot/reset.js';
import { FakeKubeadm, FakeStateStore } from '../agent/fakes.js';
import { recordingLog } from '../harness/recording-log.js';

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

  it("the agent's reset removes them before the node state, and says which", async () => {
    const state = join(dir, 'agent-reset');
    await mkdir(join(state, 'joinservice'), { recursive: true });
    await writeFile(join(state, 'cluster-secrets.json'), 'x', { mode: 0o600 });
    await writeFile(join(state, '.cluster-secrets.json.ba9876543210.tmp'), 'master secret', { mode: 0o600 });
    const log = recordingLog();
    const store = new FakeStateStore();
    await resetStaleBootstrap({
      log,
      kubeadm: new FakeKubeadm(),
      state: store,
      clusterFiles: { clear: () => removeClusterFiles(state) },
    });
    assert.deepEqual(await readdir(state), []);
    assert.ok(
      log.lines.some((l) => /removed the files of the cluster that never came to be/.test(l)),
      log.lines.join('\n'),
    );
  });

  it('a reset that cannot remove them keeps the node state, so the next start resets again', async () => {
    const store = new FakeStateStore();
    store.current = {
      version: 1,
      phase: 'reset-required',
      role: 'worker',
      origin: 'join',
      clusterId: 'ab'.repeat(32),
      measurementSalt: 'cd'.repeat(32),
      diskUuid: '3b0b8c2e-2c2a-4a0e-9f7e-0d7b1b6f0a11',
      failedStep: 'kubeadm-join',
      updatedAt: new Date(0).toISOString(),
    };
    await assert.rejects(
      resetStaleBootstrap({
        log: recordingLog(),
        kubeadm: new FakeKubeadm(),
        state: store,
        clusterFiles: {
          clear: async () => {
            throw new Error('reset: cannot remove cluster-secrets.json: EROFS');
          },
        },
      }),
      /EROFS/,
    );
    assert.equal(store.current?.phase, 'reset-required');
  });
});
