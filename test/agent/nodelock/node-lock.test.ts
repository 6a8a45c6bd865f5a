import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CLUSTER_ID_PCR,
  ClusterPcrMismatchError,
  clusterPcrValue,
  NodeLock,
  NodeLockedError,
} from '../../../agent/nodelock/node-lock.js';
import { pcr15ForClusterId } from '../../../attestation/measurements.js';
import { FakeTpm } from '../fakes.js';

const idA = Buffer.alloc(32, 0xa1);
const idB = Buffer.alloc(32, 0xb2);

describe('clusterPcrValue', () => {
  it('is SHA-256(zeros ‖ cluster ID), the value a zero PCR 15 takes after one extend', async () => {
    const tpm = new FakeTpm();
    await tpm.extendPcr(CLUSTER_ID_PCR, idA);
    assert.deepEqual(clusterPcrValue(idA), tpm.pcrs.get(CLUSTER_ID_PCR));
    assert.notDeepEqual(clusterPcrValue(idA), clusterPcrValue(idB));
  });

  it('is the one function the CLI measurements use too', () => {
    assert.equal(pcr15ForClusterId(idA), clusterPcrValue(idA).toString('hex'));
  });

  it('refuses a cluster ID that is not 32 bytes', () => {
    assert.throws(() => clusterPcrValue(Buffer.alloc(31)), /cluster ID: expected 32 bytes, got 31/);
  });
});

describe('NodeLock.acquire', () => {
  it('takes the lock once and extends PCR 15 with the cluster ID', async () => {
    const tpm = new FakeTpm();
    const lock = new NodeLock(tpm);
    assert.equal(await lock.pristine(), true);
    await lock.acquire('init', idA);
    assert.equal(lock.holder, 'init');
    assert.deepEqual(tpm.extends, [{ index: 15, digest: idA }]);
    assert.equal(await lock.pristine(), false);
  });

  const refusals: { first: 'init' | 'join'; second: 'init' | 'join'; message: RegExp }[] = [
    { first: 'init', second: 'join', message: /node is already being initialized/ },
    { first: 'join', second: 'init', message: /node is already joining a cluster/ },
    { first: 'init', second: 'init', message: /node is already being initialized/ },
    { first: 'join', second: 'join', message: /node is already joining a cluster/ },
  ];
  for (const r of refusals) {
    it(`refuses ${r.second} after ${r.first}, without touching PCR 15`, async () => {
      const tpm = new FakeTpm();
      const lock = new NodeLock(tpm);
      await lock.acquire(r.first, idA);
      await assert.rejects(lock.acquire(r.second, idB), (err: Error) => {
        assert.ok(err instanceof NodeLockedError);
        assert.match(err.message, r.message);
        return true;
      });
      assert.equal(tpm.extends.length, 1);
      assert.equal(lock.holder, r.first);
    });
  }

  it('lets exactly one of two simultaneous callers through', async () => {
    const tpm = new FakeTpm();
    const lock = new NodeLock(tpm);
    const results = await Promise.allSettled([lock.acquire('init', idA), lock.acquire('join', idB)]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected'],
    );
    assert.deepEqual(tpm.extends, [{ index: 15, digest: idA }]);
  });

  it('releases the lock when the extend itself fails: the node stays initializable', async () => {
    const tpm = new FakeTpm();
    tpm.failExtend = new Error('TPM_RC_LOCALITY');
    const lock = new NodeLock(tpm);
    await assert.rejects(lock.acquire('init', idA), /TPM_RC_LOCALITY/);
    assert.equal(lock.holder, null);
    await lock.acquire('join', idB);
    assert.equal(lock.holder, 'join');
  });

  it('refuses a cluster ID that is not 32 bytes before touching anything', async () => {
    const tpm = new FakeTpm();
    const lock = new NodeLock(tpm);
    await assert.rejects(lock.acquire('init', Buffer.alloc(16)), /cluster ID: expected 32 bytes/);
    assert.equal(lock.holder, null);
    assert.equal(tpm.extends.length, 0);
  });
});

describe('NodeLock.resume', () => {
  it('after a reboot (PCR 15 zero) extends PCR 15 again and holds the lock', async () => {
    const tpm = new FakeTpm();
    const lock = new NodeLock(tpm);
    await lock.resume(idA);
    assert.equal(lock.holder, 'join');
    assert.deepEqual(tpm.pcrs.get(15), clusterPcrValue(idA));
  });

  it('after an agent restart in the same boot (PCR 15 shows the cluster) extends nothing and holds the lock', async () => {
    const tpm = new FakeTpm();
    await tpm.extendPcr(15, idA);
    tpm.extends = [];
    const lock = new NodeLock(tpm);
    await lock.resume(idA);
    assert.equal(lock.holder, 'join');
    assert.equal(tpm.extends.length, 0);
    await assert.rejects(lock.acquire('init', idA), NodeLockedError);
  });

  it('refuses when PCR 15 shows another cluster, and takes no lock', async () => {
    const tpm = new FakeTpm();
    await tpm.extendPcr(15, idB);
    const lock = new NodeLock(tpm);
    await assert.rejects(lock.resume(idA), ClusterPcrMismatchError);
    assert.equal(lock.holder, null);
  });

  it('passes a TPM read failure on', async () => {
    const tpm = new FakeTpm();
    tpm.failRead = new Error('TCTI connection refused');
    await assert.rejects(new NodeLock(tpm).resume(idA), /TCTI connection refused/);
  });

  it('names the PCR when the TPM returns no value for it', async () => {
    const lock = new NodeLock({ readPcrs: async () => new Map(), extendPcr: async () => {} });
    await assert.rejects(lock.pristine(), /no value for PCR 15/);
  });
});
