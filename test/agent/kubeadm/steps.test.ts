import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { type KubeadmJoinRequest, kubeadmInit, kubeadmJoin } from '../../../agent/kubeadm/steps.js';
import { FakeKubeadm } from '../fakes.js';

const join: KubeadmJoinRequest = {
  nodeName: 'w-0',
  advertiseAddress: '10.0.0.7',
  apiServerEndpoint: '10.0.0.1:6443',
  token: 'abcdef.0123456789abcdef',
  caCertHash: `sha256:${'ab'.repeat(32)}`,
  controlPlane: false,
  bindPort: 6443,
};

const initInput = {
  nodeName: 'cp-0',
  advertiseAddress: '10.0.0.5',
  bindPort: 6443,
  clusterName: 'c',
  kubernetesVersion: 'v1.31.2',
  serviceCidr: '10.96.0.0/12',
  podCidr: '10.244.0.0/16',
  apiServerCertSans: [],
  controlPlaneEndpoint: '10.0.0.5:6443',
};

function joinConfig(yaml: string): Record<string, unknown> {
  const doc = yaml
    .split(/^---$/m)
    .map((d) => parse(d) as Record<string, unknown> | null)
    .find((d) => d?.kind === 'JoinConfiguration');
  assert.ok(doc, 'a JoinConfiguration document');
  return doc;
}

describe('kubeadm steps', () => {
  it('init renders an InitConfiguration, runs init and returns the admin kubeconfig', async () => {
    const kubeadm = new FakeKubeadm();
    const conf = await kubeadmInit(kubeadm, initInput);
    assert.deepEqual(kubeadm.calls, ['init', 'admin']);
    assert.deepEqual(conf, kubeadm.adminConf);
    assert.match(kubeadm.configs[0] ?? '', /kind: InitConfiguration/);
  });

  it('init fails when kubeadm fails, without reading a kubeconfig', async () => {
    const kubeadm = new FakeKubeadm();
    kubeadm.fail.init = new Error('kubeadm init failed at phase preflight (exit 1)');
    await assert.rejects(kubeadmInit(kubeadm, initInput), /at phase preflight/);
    assert.deepEqual(kubeadm.calls, ['init']);
  });

  it('a worker join pins the CA and has no control-plane section', async () => {
    const kubeadm = new FakeKubeadm();
    await kubeadmJoin(kubeadm, join);
    const doc = joinConfig(kubeadm.configs[0] ?? '');
    assert.equal(doc.controlPlane, undefined);
    assert.equal(doc.skipPhases, undefined);
    const discovery = (
      doc.discovery as { bootstrapToken: { caCertHashes: string[]; apiServerEndpoint: string } }
    ).bootstrapToken;
    assert.deepEqual(discovery.caCertHashes, [join.caCertHash]);
    assert.equal(discovery.apiServerEndpoint, '10.0.0.1:6443');
  });

  it('a control-plane join adds its address and port, no certificate key, and skips download-certs', async () => {
    const kubeadm = new FakeKubeadm();
    await kubeadmJoin(kubeadm, { ...join, controlPlane: true });
    const doc = joinConfig(kubeadm.configs[0] ?? '');
    const cp = doc.controlPlane as Record<string, unknown>;
    assert.equal('certificateKey' in cp, false, 'the shared certificates come with the ticket');
    assert.deepEqual(cp.localAPIEndpoint, { advertiseAddress: '10.0.0.7', bindPort: 6443 });
    assert.deepEqual(doc.skipPhases, ['control-plane-prepare/download-certs']);
  });

  const tunings: [string, KubeadmJoinRequest['tuning'], boolean][] = [
    ['no tuning: kubeadm waits as it would', undefined, false],
    ["'qemu-tcg': the emulator's long waits", 'qemu-tcg', true],
  ];
  for (const [name, tuning, timeouts] of tunings) {
    it(`a join renders the request's tuning, ${name}`, async () => {
      const kubeadm = new FakeKubeadm();
      await kubeadmJoin(kubeadm, { ...join, ...(tuning ? { tuning } : {}) });
      assert.equal('timeouts' in joinConfig(kubeadm.configs[0] ?? ''), timeouts);
    });
  }
});
