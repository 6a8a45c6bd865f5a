import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { type ControlPlaneResumeDeps, resumeControlPlane } from '../../../agent/controlplane/resume.js';
import { clusterPcrValue, NodeLock } from '../../../agent/nodelock/node-lock.js';
import type { ClusterSecrets } from '../../../agent/state/cluster-secrets.js';
import type { NodeState } from '../../../agent/state/node-state.js';
import { recordingLog } from '../../harness/recording-log.js';
import { clusterIdOf, FakeTpm, fakeClusterSecrets } from '../fakes.js';

function state(role: NodeState['role'], clusterId: Buffer): NodeState {
  return {
    version: 1,
    phase: 'bootstrapped',
    role,
    origin: 'init',
    clusterId: clusterId.toString('hex'),
    measurementSalt: '00'.repeat(32),
    diskUuid: '3b0b8c2e-2c2a-4a0e-9f7e-0d7b1b6f0a11',
    updatedAt: new Date(0).toISOString(),
  };
}

function deps(
  stored: ClusterSecrets | null,
  tpm: FakeTpm,
  calls: string[],
  overrides: Partial<ControlPlaneResumeDeps> = {},
) {
  return {
    secrets: { load: async () => stored },
    lock: new NodeLock(tpm),
    startJoinService: async () => {
      calls.push('join-service');
    },
    kubelet: {
      start: async () => {
        calls.push('kubelet');
      },
    },
    ...overrides,
    log: recordingLog(),
  } satisfies ControlPlaneResumeDeps;
}

describe('resumeControlPlane', () => {
  it('after a reboot: PCR 15 extended again, JoinService, kubelet', async () => {
    const s = fakeClusterSecrets();
    const tpm = new FakeTpm();
    const calls: string[] = [];
    const d = deps(s, tpm, calls);
    assert.equal(await resumeControlPlane(state('control-plane', clusterIdOf(s)), d), true);
    assert.deepEqual(tpm.pcrs.get(15), clusterPcrValue(clusterIdOf(s)));
    assert.deepEqual(calls, ['join-service', 'kubelet']);
    assert.ok(d.log.lines.some((l) => /control plane resumed/.test(l)));
  });

  it('after an agent restart in the same boot: PCR 15 left as it is', async () => {
    const s = fakeClusterSecrets();
    const tpm = new FakeTpm();
    await tpm.extendPcr(15, clusterIdOf(s));
    tpm.extends = [];
    const calls: string[] = [];
    assert.equal(await resumeControlPlane(state('control-plane', clusterIdOf(s)), deps(s, tpm, calls)), true);
    assert.equal(tpm.extends.length, 0);
    assert.deepEqual(calls, ['join-service', 'kubelet']);
  });

  const notHere: { name: string; role: NodeState['role']; stored: boolean }[] = [
    { name: 'a worker', role: 'worker', stored: true },
    { name: 'a control plane without secrets', role: 'control-plane', stored: false },
  ];
  for (const n of notHere) {
    it(`leaves ${n.name} to rejoin through a JoinService`, async () => {
      const s = fakeClusterSecrets();
      const tpm = new FakeTpm();
      const calls: string[] = [];
      assert.equal(
        await resumeControlPlane(state(n.role, clusterIdOf(s)), deps(n.stored ? s : null, tpm, calls)),
        false,
      );
      assert.deepEqual(calls, []);
      assert.equal(tpm.extends.length, 0);
    });
  }

  const refusals: {
    name: string;
    setup: (tpm: FakeTpm, s: ClusterSecrets) => Promise<Buffer>;
    error: RegExp;
  }[] = [
    {
      name: 'the secrets name another cluster than the state',
      setup: async () => randomBytes(32),
      error: /cluster secrets do not match the node state/,
    },
    {
      name: 'PCR 15 shows another cluster',
      setup: async (tpm, s) => {
        await tpm.extendPcr(15, randomBytes(32));
        return clusterIdOf(s);
      },
      error: /PCR 15 shows another cluster than this node joined; reboot required/,
    },
  ];
  for (const r of refusals) {
    it(`refuses when ${r.name}, starting nothing`, async () => {
      const s = fakeClusterSecrets();
      const tpm = new FakeTpm();
      const id = await r.setup(tpm, s);
      const calls: string[] = [];
      await assert.rejects(resumeControlPlane(state('control-plane', id), deps(s, tpm, calls)), r.error);
      assert.deepEqual(calls, []);
    });
  }

  it('passes a TPM failure on, starting nothing', async () => {
    const s = fakeClusterSecrets();
    const tpm = new FakeTpm();
    tpm.failExtend = new Error('TPM_RC_FAILURE');
    const calls: string[] = [];
    await assert.rejects(
      resumeControlPlane(state('control-plane', clusterIdOf(s)), deps(s, tpm, calls)),
      /TPM_RC_FAILURE/,
    );
    assert.deepEqual(calls, []);
  });

  it('passes a failing JoinService start on, before kubelet', async () => {
    const s = fakeClusterSecrets();
    const calls: string[] = [];
    const d = deps(s, new FakeTpm(), calls, {
      startJoinService: async () => {
        throw new Error('EADDRINUSE');
      },
    });
    await assert.rejects(resumeControlPlane(state('control-plane', clusterIdOf(s)), d), /EADDRINUSE/);
    assert.deepEqual(calls, []);
  });
});
