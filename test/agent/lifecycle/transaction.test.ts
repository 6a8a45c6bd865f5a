// runBootstrap with a fake TPM, state store and kubeadm reset: the lock comes first, the phases are recorded around
// the steps, and every step that throws ends in the one epilogue (reset-required + that step, kubeadm reset, the
// lock kept) whatever the origin.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Origin, Step } from '../../../agent/lifecycle/phases.js';
import { BootstrapFailed, type BootstrapStep, runBootstrap } from '../../../agent/lifecycle/transaction.js';
import { clusterPcrValue, NodeLock, NodeLockedError } from '../../../agent/nodelock/node-lock.js';
import { recordingLog } from '../../harness/recording-log.js';
import { FakeStateStore, FakeTpm } from '../fakes.js';

const clusterId = Buffer.alloc(32, 7);

function fixture() {
  const tpm = new FakeTpm();
  const lock = new NodeLock(tpm);
  const state = new FakeStateStore();
  const log = recordingLog();
  const calls: string[] = [];
  const deps = {
    log,
    lock,
    state,
    resetKubernetes: async () => {
      calls.push('reset');
    },
  };
  return { tpm, lock, state, log, calls, deps };
}

function node(origin: Origin) {
  return {
    origin,
    clusterId,
    role: 'worker' as const,
    measurementSalt: Buffer.alloc(32, 9),
    diskUuid: '3b0b8c2e-2c2a-4a0e-9f7e-0d7b1b6f0a11',
  };
}

function steps(calls: string[], failing?: Step): BootstrapStep[] {
  return (['install-components', 'kubeadm-join', 'join-service'] as const).map((step) => ({
    step,
    run: async () => {
      if (step === failing) throw new Error(`${step} broke`);
      calls.push(step);
    },
  }));
}

describe('runBootstrap', () => {
  const cases: {
    name: string;
    origin: Origin;
    failing?: Step;
    failPhase?: 'initializing' | 'joining' | 'bootstrapped' | 'reset-required';
    phases: string[];
    calls: string[];
    failedStep?: Step;
    marked?: boolean;
  }[] = [
    {
      name: 'join: every step, between joining and bootstrapped',
      origin: 'join',
      phases: ['joining', 'bootstrapped'],
      calls: ['install-components', 'kubeadm-join', 'join-service'],
    },
    {
      name: 'init records initializing',
      origin: 'init',
      phases: ['initializing', 'bootstrapped'],
      calls: ['install-components', 'kubeadm-join', 'join-service'],
    },
    {
      name: 'a failing step is recorded, kubeadm reset, no later step runs',
      origin: 'join',
      failing: 'kubeadm-join',
      phases: ['joining', 'reset-required@kubeadm-join'],
      calls: ['install-components', 'reset'],
      failedStep: 'kubeadm-join',
      marked: true,
    },
    {
      name: 'the first record failing is the persist-state step',
      origin: 'init',
      failPhase: 'initializing',
      phases: ['reset-required@persist-state'],
      calls: ['reset'],
      failedStep: 'persist-state',
      marked: true,
    },
    {
      name: 'the last record failing is the persist-state step, after every other step',
      origin: 'join',
      failPhase: 'bootstrapped',
      phases: ['joining', 'reset-required@persist-state'],
      calls: ['install-components', 'kubeadm-join', 'join-service', 'reset'],
      failedStep: 'persist-state',
      marked: true,
    },
    {
      name: 'a mark that cannot be written still resets kubeadm and says so',
      origin: 'join',
      failing: 'install-components',
      failPhase: 'reset-required',
      phases: ['joining'],
      calls: ['reset'],
      failedStep: 'install-components',
      marked: false,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const f = fixture();
      if (c.failPhase) f.state.failing.add(c.failPhase);
      const run = runBootstrap(f.deps, node(c.origin), steps(f.calls, c.failing));
      if (c.failedStep) {
        await assert.rejects(run, (err: unknown) => {
          assert.ok(err instanceof BootstrapFailed);
          assert.equal(err.step, c.failedStep);
          assert.equal(err.origin, c.origin);
          assert.equal(err.marked, c.marked);
          assert.match(err.message, new RegExp(`^${c.failedStep}: `));
          return true;
        });
        const said = f.log.lines.find((l) => l.includes(`${c.origin} failed at ${c.failedStep}:`));
        assert.ok(said, f.log.lines.join('\n'));
        assert.match(said, c.marked ? /node marked for reset/ : /node NOT marked for reset/);
      } else await run;
      assert.deepEqual(f.state.phases(), c.phases);
      assert.deepEqual(f.calls, c.calls);
      assert.equal(f.lock.holder, c.origin, 'the lock stays taken: only a reboot frees it');
      assert.deepEqual(f.tpm.pcrs.get(15), clusterPcrValue(clusterId));
    });
  }

  it('the lock first: a node locked by the other origin runs nothing and records nothing', async () => {
    const f = fixture();
    await f.lock.acquire('init', clusterId);
    await assert.rejects(runBootstrap(f.deps, node('join'), steps(f.calls)), NodeLockedError);
    assert.deepEqual(f.state.saved, []);
    assert.deepEqual(f.calls, []);
  });

  it('a TPM that cannot extend PCR 15 leaves the node as it was', async () => {
    const f = fixture();
    f.tpm.failExtend = new Error('TPM_RC_FAILURE');
    await assert.rejects(runBootstrap(f.deps, node('init'), steps(f.calls)), /TPM_RC_FAILURE/);
    assert.equal(f.lock.holder, null);
    assert.deepEqual(f.state.saved, []);
    assert.deepEqual(f.calls, []);
  });
});
