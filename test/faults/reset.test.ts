// The agent's reset on a real directory: it leaves nothing of the cluster that never came to be (every file
// layout.ts marks as the cluster's, and the temp file of an atomic write that may hold the master secret) and keeps
// the disk ID a JoinService binds the node to.
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { InitReplyStore } from '../../agent/initserver/init-reply.js';
import { loadOrCreateDiskId } from '../../agent/joinclient/disk-id.js';
import { STATE_FILES, type StateFile, statePath } from '../../agent/lifecycle/layout.js';
import { removeClusterFiles, resetStaleBootstrap } from '../../agent/lifecycle/reset.js';
import { ClusterSecretsStore } from '../../agent/state/cluster-secrets.js';
import { NodeStateStore } from '../../agent/state/node-state.js';
import { FakeKubeadm, FakeStateStore, nodeStateIn } from '../agent/fakes.js';
import { recordingLog } from '../harness/recording-log.js';
import { tempDir } from '../harness/temp-dir.js';

describe('reset removes the cluster files', () => {
  const dir = tempDir('sextant-reset-faults-');

  it("removes every file layout.ts marks as the cluster's, with the temp file of an atomic write; keeps the rest", async () => {
    const state = join(dir, 'state');
    await mkdir(state, { recursive: true });
    for (const file of Object.keys(STATE_FILES) as StateFile[]) {
      if (file === 'joinService') {
        await mkdir(statePath(state, file));
        await writeFile(join(statePath(state, file), 'admissions.json'), 'x');
      } else await writeFile(statePath(state, file), 'x', { mode: 0o600 });
    }
    await writeFile(join(state, '.cluster-secrets.json.0123456789ab.tmp'), 'master secret', { mode: 0o600 });
    const removed = await removeClusterFiles(state);
    assert.deepEqual(removed.sort(), [
      '.cluster-secrets.json.0123456789ab.tmp',
      'cluster-secrets.json',
      'init-reply.json',
      'inventory-floor.json',
      'inventory.json',
      'joinservice',
      'measurements-floor.json',
      'measurements.json',
      'measurements.json.mac',
    ]);
    // node-state.json goes through the state store's own clear(); the disk ID stays.
    assert.deepEqual((await readdir(state)).sort(), ['disk-id', 'node-state.json']);
    assert.deepEqual(await removeClusterFiles(state), []);
  });

  it('the writers write where layout.ts says, so the reset finds what they wrote', async () => {
    const state = join(dir, 'writers');
    await mkdir(state, { recursive: true });
    await new NodeStateStore(state).save({
      phase: 'initializing',
      role: 'control-plane',
      origin: 'init',
      clusterId: 'ab'.repeat(32),
      measurementSalt: 'cd'.repeat(32),
      diskUuid: '3b0b8c2e-2c2a-4a0e-9f7e-0d7b1b6f0a11',
    });
    await loadOrCreateDiskId(state);
    assert.deepEqual(
      (await readdir(state)).sort(),
      [STATE_FILES.diskId.name, STATE_FILES.nodeState.name].sort(),
    );
    assert.equal(new ClusterSecretsStore(state).path, statePath(state, 'clusterSecrets'));
    assert.equal(new InitReplyStore(state).path, statePath(state, 'initReply'));
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
      stateDir: state,
    });
    assert.deepEqual(await readdir(state), []);
    assert.ok(
      log.lines.some((l) => /removed the files of the cluster that never came to be/.test(l)),
      log.lines.join('\n'),
    );
  });

  it('a reset that cannot remove them keeps the node state, so the next start resets again', async () => {
    const blocked = join(dir, 'not-a-dir');
    await writeFile(blocked, 'x');
    const store = new FakeStateStore();
    store.current = nodeStateIn('reset-required', 'kubeadm-join');
    await assert.rejects(
      resetStaleBootstrap({
        log: recordingLog(),
        kubeadm: new FakeKubeadm(),
        state: store,
        // a state directory that is a file: nothing under it can be listed or removed
        stateDir: blocked,
      }),
      /ENOTDIR/,
    );
    assert.equal(store.current?.phase, 'reset-required');
  });
});
