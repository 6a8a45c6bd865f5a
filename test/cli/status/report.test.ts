// `sextant status`'s report from its probes (fakes): PCR 15 against the cluster ID, a node that does not answer as
// a row, Kubernetes readiness by name or address, the image version only for an attested node, the exit code.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type {
  KubernetesNode,
  NodeAttestation,
  StatusProbes,
  WorkspaceNode,
} from '../../../cli/commands/backends.js';
import { collectStatus, statusExitCode, statusText } from '../../../cli/status/report.js';
import type { ClusterState } from '../../../cli/workspace/state.js';
import { clusterPcrValue } from '../../../common/cluster-pcr.js';

const clusterId = Buffer.alloc(32, 7);
const state: ClusterState = {
  clusterId,
  ownerId: Buffer.alloc(32, 8),
  endpoint: '10.9.0.2:6443',
  initNode: '10.9.0.2:9000',
  createdAt: new Date('2026-01-01T00:00:00Z'),
};
const cp: WorkspaceNode = { name: 'cp-0', role: 'control-plane', address: '10.9.0.2' };
const worker: WorkspaceNode = { name: 'worker-0', role: 'worker', address: '10.9.0.3' };
const ours: NodeAttestation = { verified: true, pcr15: clusterPcrValue(clusterId), imageVersion: 'v1.2.3' };

function probes(
  nodes: WorkspaceNode[],
  attest: Record<string, NodeAttestation | Error>,
  kube: KubernetesNode[] | Error,
): StatusProbes {
  return {
    nodes: async () => nodes,
    attest: async (address) => {
      const a = attest[address];
      if (a instanceof Error || a === undefined) throw a ?? new Error(`no fake for ${address}`);
      return a;
    },
    kubernetesNodes: async () => {
      if (kube instanceof Error) throw kube;
      return kube;
    },
  };
}

describe('collectStatus', () => {
  const cases: {
    name: string;
    state?: ClusterState;
    nodes: WorkspaceNode[];
    attest: Record<string, NodeAttestation | Error>;
    kube: KubernetesNode[] | Error;
    want: { attested: boolean[]; attestation: RegExp[]; image: string[]; kubernetes: string[] };
    api: RegExp | 'reachable';
    code: number;
  }[] = [
    {
      name: 'both nodes ours and Ready (the worker matched by its address)',
      state,
      nodes: [cp, worker],
      attest: { [cp.address]: ours, [worker.address]: ours },
      kube: [
        { name: 'cp-0', addresses: [], ready: true },
        { name: 'w0', addresses: ['10.9.0.3'], ready: true },
      ],
      want: {
        attested: [true, true],
        attestation: [/PCR 15 = the cluster ID/, /PCR 15 = the cluster ID/],
        image: ['v1.2.3', 'v1.2.3'],
        kubernetes: ['Ready', 'Ready'],
      },
      api: 'reachable',
      code: 0,
    },
    {
      name: 'a node that does not answer is a row saying so; exit 1',
      state,
      nodes: [cp, worker],
      attest: {
        [cp.address]: ours,
        [worker.address]: { verified: false, reason: 'no Sextant agent at 10.9.0.3:9000 (nothing listens)' },
      },
      kube: [{ name: 'cp-0', addresses: [], ready: true }],
      want: {
        attested: [true, false],
        attestation: [/cluster ID/, /^no Sextant agent at 10\.9\.0\.3:9000/],
        image: ['v1.2.3', 'unknown'],
        kubernetes: ['Ready', 'not registered'],
      },
      api: 'reachable',
      code: 1,
    },
    {
      name: 'a probe that throws is that row, not a crash',
      state,
      nodes: [cp],
      attest: { [cp.address]: new Error('socket hang up') },
      kube: [{ name: 'cp-0', addresses: [], ready: false }],
      want: {
        attested: [false],
        attestation: [/^socket hang up$/],
        image: ['unknown'],
        kubernetes: ['NotReady'],
      },
      api: 'reachable',
      code: 1,
    },
    {
      name: 'PCR 15 unset: not joined; another value: another cluster',
      state,
      nodes: [cp, worker],
      attest: {
        [cp.address]: { verified: true, pcr15: Buffer.alloc(32) },
        [worker.address]: { verified: true, pcr15: clusterPcrValue(Buffer.alloc(32, 1)), imageVersion: 'v1' },
      },
      kube: new Error('GET /api/v1/nodes: connect ECONNREFUSED'),
      want: {
        attested: [false, false],
        attestation: [/PCR 15 is unset: the node has not joined/, /PCR 15 is another cluster's ID/],
        image: ['unknown', 'unknown'],
        kubernetes: ['unknown', 'unknown'],
      },
      api: /ECONNREFUSED/,
      code: 1,
    },
    {
      name: 'before init: the boot chain alone, Kubernetes not asked',
      nodes: [cp],
      attest: { [cp.address]: { verified: true, pcr15: Buffer.alloc(32), imageVersion: 'v1' } },
      kube: new Error('must not be asked'),
      want: { attested: [true], attestation: [/PCR 15 not checked/], image: ['v1'], kubernetes: ['unknown'] },
      api: /not initialized/,
      code: 0,
    },
    {
      name: 'unsigned measurements name no image version',
      state,
      nodes: [cp],
      attest: { [cp.address]: { verified: true, pcr15: clusterPcrValue(clusterId) } },
      kube: [],
      want: {
        attested: [true],
        attestation: [/cluster ID/],
        image: ['unknown'],
        kubernetes: ['not registered'],
      },
      api: 'reachable',
      code: 0,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const report = await collectStatus({
        cluster: 'c1',
        state: c.state,
        probes: probes(c.nodes, c.attest, c.kube),
      });
      assert.equal(report.initialized, c.state !== undefined);
      assert.equal(report.endpoint, c.state ? '10.9.0.2:6443' : null);
      assert.deepEqual(
        report.nodes.map((n) => [n.name, n.role, n.address]),
        c.nodes.map((n) => [n.name, n.role, n.address]),
      );
      assert.deepEqual(
        report.nodes.map((n) => n.attested),
        c.want.attested,
      );
      for (const [i, n] of report.nodes.entries())
        assert.match(n.attestation, c.want.attestation[i] as RegExp);
      assert.deepEqual(
        report.nodes.map((n) => n.imageVersion),
        c.want.image,
      );
      assert.deepEqual(
        report.nodes.map((n) => n.kubernetes),
        c.want.kubernetes,
      );
      if (c.api === 'reachable') assert.deepEqual(report.kubernetesApi, { reachable: true });
      else {
        assert.equal(report.kubernetesApi.reachable, false);
        assert.match('reason' in report.kubernetesApi ? report.kubernetesApi.reason : '', c.api);
      }
      assert.equal(statusExitCode(report), c.code);
    });
  }
});

describe('statusText', () => {
  it('a table with the endpoint above and each verdict beneath', async () => {
    const report = await collectStatus({
      cluster: 'c1',
      state,
      probes: probes(
        [cp, worker],
        {
          [cp.address]: ours,
          [worker.address]: { verified: false, reason: 'no Sextant agent at 10.9.0.3:9000' },
        },
        [{ name: 'cp-0', addresses: [], ready: true }],
      ),
    });
    assert.equal(
      statusText(report),
      [
        'cluster c1: control-plane endpoint 10.9.0.2:6443',
        '',
        'NAME      ROLE           ADDRESS   ATTESTED  IMAGE    KUBERNETES',
        'cp-0      control-plane  10.9.0.2  yes       v1.2.3   Ready',
        'worker-0  worker         10.9.0.3  no        unknown  not registered',
        '',
        'cp-0: boot chain verified, PCR 15 = the cluster ID',
        'worker-0: no Sextant agent at 10.9.0.3:9000',
        '',
      ].join('\n'),
    );
  });

  it('no nodes: says so and how to make them', async () => {
    const report = await collectStatus({ cluster: 'c1', state: undefined, probes: probes([], {}, []) });
    assert.equal(
      statusText(report),
      'cluster c1: not initialized (no control-plane endpoint yet)\nno nodes in this workspace (run "sextant create")\n',
    );
  });
});
