// The product's main job, end to end: `sextant mini up --kms` in an empty directory (release built or cached, config,
// create, init with the master secret wrapped by a real OpenBao, every node joined and Ready), the scenarios in
// scenarios/ against that one cluster from the host, then `sextant mini down --yes`, which must leave no process,
// network namespace or file behind.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { networkFor } from '../../cli/provider/qemu/network.js';
import { type MiniCluster, processesOf, startMiniCluster } from './mini-cluster.js';
import { SCENARIOS } from './scenarios/index.js';

describe('sextant mini up: a real Kubernetes cluster in local VMs', () => {
  let cluster: MiniCluster | undefined;
  let down = false;
  before(
    async () => {
      cluster = await startMiniCluster();
    },
    { timeout: 90 * 60_000 },
  );
  after(async () => {
    if (cluster && !down) await cluster.sextant(['mini', 'down', '--yes']);
    if (cluster) await cluster.close();
    if (cluster) await rm(cluster.work, { recursive: true, force: true });
  });

  for (const s of SCENARIOS) {
    it(s.name, { timeout: s.timeoutMs ?? 20 * 60_000 }, async () => {
      assert.ok(cluster, 'mini up brought the cluster up');
      await s.run(cluster);
    });
  }

  it('mini down leaves no process, network namespace or file', { timeout: 5 * 60_000 }, async () => {
    assert.ok(cluster, 'mini up brought the cluster up');
    const c = cluster;
    const refused = await c.sextant(['mini', 'down']);
    assert.notEqual(refused.code, 0, 'without --yes and no terminal, mini down refuses');
    const t0 = Date.now();
    const r = await c.sextant(['mini', 'down', '--yes']);
    down = true;
    assert.equal(r.code, 0, r.stderr);
    console.log(`mini down: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual(await processesOf(c.ws), [], 'no qemu, swtpm or component server of the workspace');
    assert.equal(
      existsSync(`/run/netns/${networkFor(c.ws).namespace}`),
      false,
      'the network namespace is gone',
    );
    assert.deepEqual(await readdir(c.ws), [], 'the workspace is empty');
  });
});
