// runBootstrap with a fake TPM, state store and kubeadm reset: the lock comes first, the phases are recorded around
// the steps, and every step that throws ends in the one epilogue (reset-required + that step, kubeadm reset, the
// lock kept) whatever the origin.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, it } from 'node:test';
import { DiskMapper } from '../../../agent/disk/disk-mapper.js';
import { WrongDiskKeyError } from '../../../agent/disk/errors.js';
import type { Origin, Step } from '../../../agent/lifecycle/phases.js';
import { BootstrapFailed, type BootstrapStep, runBootstrap } from '../../../agent/lifecycle/transaction.js';
import { clusterPcrValue, NodeLock, NodeLockedError } from '../../../agent/nodelock/node-lock.js';
import { deriveDiskKey } from '../../../common/keys.js';
import { recordingLog } from '../../harness/recording-log.js';
import { tempDir } from '../../harness/temp-dir.js';
import { blankDisk, HOST_LAYOUT, KeyCheckMapping } from '../disk/luks-files.js';
import { FakeDisk, FakeStateStore, FakeTpm } from '../fakes.js';

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

// With a state disk: the commit to the cluster's key is the last step before "bootstrapped", and every failure from
// the lock on marks the disk for reset beside the node state.
describe('runBootstrap with a state disk', () => {
  const diskKey = Buffer.alloc(32, 5);
  const cases: {
    name: string;
    origin: Origin;
    failing?: Step;
    failPhase?: 'bootstrapped';
    failDisk?: 'commit' | 'markForReset';
    calls: string[];
    phases: string[];
    failedStep?: Step;
    marked?: boolean;
  }[] = [
    {
      name: 'join: the disk is committed after every step, before bootstrapped',
      origin: 'join',
      calls: ['install-components', 'kubeadm-join', 'join-service', 'disk-commit@joining'],
      phases: ['joining', 'bootstrapped'],
    },
    {
      name: 'init: the same',
      origin: 'init',
      calls: ['install-components', 'kubeadm-join', 'join-service', 'disk-commit@initializing'],
      phases: ['initializing', 'bootstrapped'],
    },
    {
      name: 'a failing step: no commit, the disk marked for reset, then kubeadm reset',
      origin: 'join',
      failing: 'kubeadm-join',
      calls: ['install-components', 'disk-mark-reset', 'reset'],
      phases: ['joining', 'reset-required@kubeadm-join'],
      failedStep: 'kubeadm-join',
      marked: true,
    },
    {
      name: 'a commit that fails is the disk-commit step',
      origin: 'init',
      failDisk: 'commit',
      calls: [
        'install-components',
        'kubeadm-join',
        'join-service',
        'disk-commit@initializing',
        'disk-mark-reset',
        'reset',
      ],
      phases: ['initializing', 'reset-required@disk-commit'],
      failedStep: 'disk-commit',
      marked: true,
    },
    {
      name: 'bootstrapped not recorded after the commit: the disk goes back to uninitialized',
      origin: 'join',
      failPhase: 'bootstrapped',
      calls: [
        'install-components',
        'kubeadm-join',
        'join-service',
        'disk-commit@joining',
        'disk-mark-reset',
        'reset',
      ],
      phases: ['joining', 'reset-required@persist-state'],
      failedStep: 'persist-state',
      marked: true,
    },
    {
      name: 'a disk mark that cannot be written: not marked, said so, kubeadm reset all the same',
      origin: 'join',
      failing: 'install-components',
      failDisk: 'markForReset',
      calls: ['disk-mark-reset', 'reset'],
      phases: ['joining', 'reset-required@install-components'],
      failedStep: 'install-components',
      marked: false,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const f = fixture();
      const disk = new FakeDisk();
      disk.calls = f.calls;
      const commit = disk.commit.bind(disk);
      disk.commit = (key) => {
        f.calls.push(`disk-commit@${f.state.current?.phase}`);
        return commit(key);
      };
      if (c.failPhase) f.state.failing.add(c.failPhase);
      if (c.failDisk) disk.fail[c.failDisk] = new Error(`${c.failDisk} broke`);
      const run = runBootstrap(
        { ...f.deps, disk },
        { ...node(c.origin), diskKey },
        steps(f.calls, c.failing),
      );
      if (c.failedStep) {
        await assert.rejects(run, (err: unknown) => {
          assert.ok(err instanceof BootstrapFailed);
          assert.equal(err.step, c.failedStep);
          assert.equal(err.marked, c.marked);
          return true;
        });
        if (c.failDisk === 'markForReset')
          assert.ok(
            f.log.lines.some((l) => l.includes('cannot mark state disk')),
            f.log.lines.join('\n'),
          );
      } else {
        await run;
        assert.deepEqual(disk.keys, [diskKey]);
      }
      assert.deepEqual(
        f.calls.filter((x) => x !== 'disk-commit'),
        c.calls,
      );
      assert.deepEqual(f.state.phases(), c.phases);
    });
  }

  for (const [name, key] of [
    ['no disk key', undefined],
    ['a disk key of 16 bytes', Buffer.alloc(16)],
  ] as const) {
    it(`${name}: refused before the lock, nothing run or recorded`, async () => {
      const f = fixture();
      const disk = new FakeDisk();
      await assert.rejects(
        runBootstrap(
          { ...f.deps, disk },
          { ...node('join'), ...(key ? { diskKey: key } : {}) },
          steps(f.calls),
        ),
        /^Error: disk key: expected 32 bytes for state disk 3b0b8c2e-/,
      );
      assert.equal(f.lock.holder, null);
      assert.deepEqual([f.state.saved, f.calls, disk.calls], [[], [], []]);
    });
  }
});

// The same transaction on a real LUKS2 file (device-mapper swapped for a key check): what the next boot finds.
describe('runBootstrap on a real LUKS2 state disk', () => {
  const master = { key: Buffer.alloc(32, 1), salt: Buffer.alloc(32, 2) };
  const root = tempDir('sextant-disk-');
  let seq = 0;
  let mapper: () => DiskMapper;
  beforeEach(async () => {
    const dir = join(root, `boot-${seq++}`);
    await mkdir(dir);
    const disk = await blankDisk(join(dir, 'state.img'));
    const mapping = new KeyCheckMapping();
    mapper = () => new DiskMapper({ disk, workDir: dir, name: 'state', layout: HOST_LAYOUT, mapping });
  });

  const cases: { name: string; failing?: Step; failPhase?: 'bootstrapped'; next: 'initialized' | 'fresh' }[] =
    [
      { name: 'a bootstrap that succeeds leaves the disk under the derived key', next: 'initialized' },
      {
        name: 'one failing before the commit leaves it to be formatted again',
        failing: 'kubeadm-join',
        next: 'fresh',
      },
      {
        name: 'one failing after the commit marks it to be formatted again',
        failPhase: 'bootstrapped',
        next: 'fresh',
      },
    ];
  for (const c of cases) {
    it(c.name, async () => {
      const f = fixture();
      if (c.failPhase) f.state.failing.add(c.failPhase);
      const disk = mapper();
      const prepared = await disk.prepare();
      assert.equal(prepared.kind, 'fresh');
      const diskKey = deriveDiskKey(master, prepared.uuid);
      const run = runBootstrap(
        { ...f.deps, disk },
        { ...node('join'), diskUuid: prepared.uuid, diskKey },
        steps(f.calls, c.failing),
      );
      if (c.next === 'fresh') await assert.rejects(run, BootstrapFailed);
      else await run;
      await disk.close();
      // the next boot
      const next = mapper();
      const found = await next.prepare();
      assert.equal(found.kind, c.next);
      assert.equal(found.uuid, prepared.uuid, 'the UUID (the disk ID a JoinService knows) survives');
      if (found.kind === 'initialized') {
        await assert.rejects(
          next.openWithKey(deriveDiskKey(master, '00000000-0000-4000-8000-000000000000')),
          WrongDiskKeyError,
        );
        assert.equal(await next.openWithKey(diskKey), '/dev/mapper/state');
      }
      await next.close();
    });
  }
});
