// `sextant status` through the CLI with fake probes: the workspace's state and config read, text and `-o json` on
// stdout, exit 1 when a node fails to attest, a bad --output a usage error, and the help and completion list it.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Backends, StatusOptions, StatusProbes } from '../../../cli/commands/backends.js';
import { saveConfig } from '../../../cli/config/file.js';
import { defaultQemuConfig } from '../../../cli/config/schema.js';
import type { StatusReport } from '../../../cli/status/report.js';
import { saveState } from '../../../cli/workspace/state.js';
import { clusterPcrValue } from '../../../common/cluster-pcr.js';
import { runCliInProcess } from '../../harness/cli.js';

const clusterId = Buffer.alloc(32, 3);
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function workspace(initialized: boolean): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sextant-status-'));
  dirs.push(dir);
  const config = defaultQemuConfig();
  config.name = 'demo';
  await saveConfig(dir, config);
  if (initialized) {
    await saveState(dir, {
      clusterId,
      ownerId: Buffer.alloc(32, 4),
      endpoint: '10.7.0.2:6443',
      initNode: '10.7.0.2:9000',
      createdAt: new Date('2026-01-01T00:00:00Z'),
    });
  }
  return dir;
}

function backends(probes: StatusProbes, seen: StatusOptions[] = []): Backends {
  return {
    runInit: async () => assert.fail('init is not run here'),
    runVerify: async () => assert.fail('verify is not run here'),
    statusProbes: async (_ctx, options) => {
      seen.push(options);
      return probes;
    },
    provider: async () => assert.fail('no provider here'),
  };
}

const twoNodes = (workerAnswers: boolean): StatusProbes => ({
  nodes: async () => [
    { name: 'cp-0', role: 'control-plane', address: '10.7.0.2' },
    { name: 'worker-0', role: 'worker', address: '10.7.0.3' },
  ],
  attest: async (address) =>
    address === '10.7.0.3' && !workerAnswers
      ? { verified: false, reason: 'no Sextant agent at 10.7.0.3:9000 (nothing listens on that port)' }
      : { verified: true, pcr15: clusterPcrValue(clusterId), imageVersion: 'img-7' },
  kubernetesNodes: async () => [
    { name: 'cp-0', addresses: ['10.7.0.2'], ready: true },
    { name: 'worker-0', addresses: ['10.7.0.3'], ready: workerAnswers },
  ],
});

describe('sextant status', () => {
  const cases: { name: string; args: string[]; workerAnswers: boolean; code: number; stdout: RegExp[] }[] = [
    {
      name: 'text: the endpoint and one row per node, exit 0',
      args: [],
      workerAnswers: true,
      code: 0,
      stdout: [
        /^cluster demo: control-plane endpoint 10\.7\.0\.2:6443\n/,
        /\ncp-0 +control-plane +10\.7\.0\.2 +yes +img-7 +Ready\n/,
        /\nworker-0 +worker +10\.7\.0\.3 +yes +img-7 +Ready\n/,
      ],
    },
    {
      name: 'text: a node that does not answer is a row saying so, exit 1',
      args: [],
      workerAnswers: false,
      code: 1,
      stdout: [
        /\nworker-0 +worker +10\.7\.0\.3 +no +unknown +NotReady\n/,
        /\nworker-0: no Sextant agent at 10\.7\.0\.3:9000/,
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const dir = await workspace(true);
      const r = await runCliInProcess(['status', '--workspace', dir, ...c.args], {
        backends: backends(twoNodes(c.workerAnswers)),
      });
      assert.equal(r.code, c.code, r.stderr);
      for (const re of c.stdout) assert.match(r.stdout, re);
    });
  }

  for (const flag of [['-o', 'json'], ['--output', 'json'], ['--output=json']]) {
    it(`${flag.join(' ')}: one JSON document on stdout`, async () => {
      const dir = await workspace(true);
      const seen: StatusOptions[] = [];
      const r = await runCliInProcess(['status', '--workspace', dir, ...flag, '--insecure-measurements'], {
        backends: backends(twoNodes(false), seen),
      });
      assert.equal(r.code, 1, r.stderr);
      const report = JSON.parse(r.stdout) as StatusReport;
      assert.equal(report.cluster, 'demo');
      assert.equal(report.initialized, true);
      assert.equal(report.endpoint, '10.7.0.2:6443');
      assert.deepEqual(report.kubernetesApi, { reachable: true });
      assert.deepEqual(
        report.nodes.map((n) => [n.name, n.role, n.address, n.attested, n.imageVersion, n.kubernetes]),
        [
          ['cp-0', 'control-plane', '10.7.0.2', true, 'img-7', 'Ready'],
          ['worker-0', 'worker', '10.7.0.3', false, 'unknown', 'NotReady'],
        ],
      );
      assert.deepEqual(seen, [{ insecureMeasurements: true }]);
    });
  }

  it('before init: no endpoint, Kubernetes not asked', async () => {
    const dir = await workspace(false);
    const probes = twoNodes(true);
    probes.kubernetesNodes = async () => assert.fail('the API is not asked before init');
    const r = await runCliInProcess(['status', '-o', 'json', '--workspace', dir], {
      backends: backends(probes),
    });
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as StatusReport;
    assert.equal(report.endpoint, null);
    assert.equal(report.kubernetesApi.reachable, false);
  });

  it('a bad --output is a usage error naming the flag', async () => {
    const dir = await workspace(true);
    const r = await runCliInProcess(['status', '-o', 'yaml', '--workspace', dir], {
      backends: backends(twoNodes(true)),
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^sextant status: --output: expected text or json, got "yaml"/);
    assert.equal(r.stdout, '');
  });

  it('a directory that is no workspace: an error, exit 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sextant-status-'));
    dirs.push(dir);
    const r = await runCliInProcess(['status', '--workspace', dir], { backends: backends(twoNodes(true)) });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^sextant status: .*sextant-conf\.yaml/);
  });

  it('help, `help status` and the bash completion name it', async () => {
    const top = await runCliInProcess(['--help']);
    assert.match(top.stdout, /\n {2}status +every node of the workspace/);
    const help = await runCliInProcess(['help', 'status']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^usage: sextant status \[--insecure-measurements\] \[-o json\]/);
    assert.match(help.stdout, /-o, --output FORMAT/);
    const completion = await runCliInProcess(['completion', 'bash']);
    assert.match(completion.stdout, /"status"\) flags="--insecure-measurements --output --workspace --help"/);
  });
});
