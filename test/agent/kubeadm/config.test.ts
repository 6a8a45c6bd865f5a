import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import {
  IMAGE_REPOSITORY,
  INIT_TOKEN_TTL,
  initConfiguration,
  joinConfiguration,
} from '../../../agent/kubeadm/config.js';
import type { InitConfigInput, JoinConfigInput } from '../../../agent/kubeadm/config-input.js';
import { KUBEADM_TIMEOUTS } from '../../../agent/kubeadm/tuning.js';
import { CERT_KEY, HASH, TOKEN, initInput as validInit, joinInput as validJoin } from './inputs.js';

const initInput: InitConfigInput = { ...validInit, tuning: 'qemu-tcg' };
const joinInput: JoinConfigInput = { ...validJoin, tuning: 'qemu-tcg' };
const CRI = 'unix:///run/containerd/containerd.sock';

const docs = (yaml: string) =>
  parseAllDocuments(yaml).map((d) => {
    assert.deepEqual(d.errors, []);
    return d.toJS() as Record<string, unknown>;
  });

const leaderElection = [
  { name: 'leader-elect-lease-duration', value: '60s' },
  { name: 'leader-elect-renew-deadline', value: '45s' },
  { name: 'leader-elect-retry-period', value: '5s' },
];

describe('initConfiguration', () => {
  it('produces the exact v1beta4 shape, tuned for QEMU TCG', () => {
    const [init, cluster, kubelet, kubeProxy, ...rest] = docs(initConfiguration(initInput));
    assert.equal(rest.length, 0);
    assert.deepEqual(kubeProxy, {
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      mode: 'nftables',
    });
    assert.deepEqual(init, {
      apiVersion: 'kubeadm.k8s.io/v1beta4',
      kind: 'InitConfiguration',
      nodeRegistration: {
        name: 'cp-0',
        criSocket: CRI,
        kubeletExtraArgs: [{ name: 'node-ip', value: '10.0.0.2' }],
      },
      localAPIEndpoint: { advertiseAddress: '10.0.0.2', bindPort: 6443 },
      bootstrapTokens: [
        {
          token: TOKEN,
          ttl: '1h0m0s',
          usages: ['signing', 'authentication'],
          groups: ['system:bootstrappers:kubeadm:default-node-token'],
        },
      ],
      timeouts: {
        controlPlaneComponentHealthCheck: '15m0s',
        kubeletHealthCheck: '10m0s',
        kubernetesAPICall: '3m0s',
        etcdAPICall: '5m0s',
        tlsBootstrap: '15m0s',
        discovery: '15m0s',
      },
      certificateKey: CERT_KEY,
    });
    assert.deepEqual(cluster, {
      apiVersion: 'kubeadm.k8s.io/v1beta4',
      kind: 'ClusterConfiguration',
      clusterName: 'sextant',
      kubernetesVersion: 'v1.31.2',
      controlPlaneEndpoint: '10.0.0.2:6443',
      imageRepository: 'localhost/sextant',
      networking: { serviceSubnet: '10.96.0.0/12', podSubnet: '10.244.0.0/16', dnsDomain: 'cluster.local' },
      apiServer: {
        certSANs: ['10.0.0.2', 'api.sextant.example', '*.sextant.example', 'fd00::1'],
        extraArgs: [
          { name: 'etcd-healthcheck-timeout', value: '30s' },
          { name: 'etcd-readycheck-timeout', value: '30s' },
        ],
      },
      controllerManager: { extraArgs: leaderElection },
      scheduler: { extraArgs: leaderElection },
    });
    assert.equal(kubelet?.apiVersion, 'kubelet.config.k8s.io/v1beta1');
    assert.equal(kubelet?.kind, 'KubeletConfiguration');
    assert.equal(kubelet?.cgroupDriver, 'systemd');
  });

  it('omits optional secrets and pod CIDR when absent, and takes extra kubelet args', () => {
    const { bootstrapToken: _t, certificateKey: _k, podCidr: _p, ...rest } = initInput;
    const [init, cluster] = docs(
      initConfiguration({ ...rest, kubeletExtraArgs: [{ name: 'v', value: '2' }] }),
    );
    assert.equal('certificateKey' in (init ?? {}), false);
    assert.deepEqual((cluster!.networking as Record<string, unknown>).podSubnet, undefined);
    assert.deepEqual((init!.nodeRegistration as { kubeletExtraArgs: unknown }).kubeletExtraArgs, [
      { name: 'node-ip', value: '10.0.0.2' },
      { name: 'v', value: '2' },
    ]);
  });

  it('leaves no long-lived token: without one, init gets a random token living minutes, not 24 h', () => {
    const { bootstrapToken: _t, ...rest } = initInput;
    const tokens = [1, 2].map(() => {
      const [init] = docs(initConfiguration(rest));
      const [token, ...more] = init!.bootstrapTokens as { token: string; ttl: string }[];
      assert.equal(more.length, 0);
      assert.equal(token!.ttl, INIT_TOKEN_TTL);
      assert.match(token!.token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
      return token!.token;
    });
    assert.notEqual(tokens[0], tokens[1], 'a fresh token each time');
  });

  it("names the CRI socket, the local image repository and the profile's timeouts", () => {
    const [init, cluster] = docs(
      initConfiguration({ ...initInput, imageRepository: 'registry.example/k8s' }),
    );
    assert.equal((init!.nodeRegistration as Record<string, unknown>).criSocket, CRI);
    assert.deepEqual(init!.timeouts, KUBEADM_TIMEOUTS);
    assert.equal(cluster!.imageRepository, 'registry.example/k8s');
    assert.equal(IMAGE_REPOSITORY, 'localhost/sextant');
  });
});

describe('joinConfiguration', () => {
  it('produces a worker JoinConfiguration with pinned token discovery', () => {
    const [join, ...rest] = docs(joinConfiguration(joinInput));
    assert.equal(rest.length, 0);
    assert.deepEqual(join, {
      apiVersion: 'kubeadm.k8s.io/v1beta4',
      kind: 'JoinConfiguration',
      nodeRegistration: {
        name: 'worker-1',
        criSocket: CRI,
        kubeletExtraArgs: [{ name: 'node-ip', value: '10.0.0.3' }],
      },
      discovery: {
        bootstrapToken: { apiServerEndpoint: '10.0.0.2:6443', token: TOKEN, caCertHashes: [HASH] },
      },
      timeouts: KUBEADM_TIMEOUTS,
    });
  });

  it('puts node-ip first, before extra kubelet args', () => {
    const [join] = docs(joinConfiguration({ ...joinInput, nodeIp: 'fd00::3', kubeletExtraArgs: { v: '2' } }));
    assert.deepEqual((join!.nodeRegistration as Record<string, unknown>).kubeletExtraArgs, [
      { name: 'node-ip', value: 'fd00::3' },
      { name: 'v', value: '2' },
    ]);
  });

  it('adds the control-plane section for control-plane joins', () => {
    const [join] = docs(
      joinConfiguration({
        ...joinInput,
        nodeIp: 'fd00::3',
        controlPlane: { advertiseAddress: 'fd00::3', bindPort: 6444, certificateKey: CERT_KEY },
      }),
    );
    assert.deepEqual(join?.controlPlane, {
      localAPIEndpoint: { advertiseAddress: 'fd00::3', bindPort: 6444 },
      certificateKey: CERT_KEY,
    });
    const [noKey] = docs(
      joinConfiguration({
        ...joinInput,
        kubeletExtraArgs: undefined,
        controlPlane: { advertiseAddress: '10.0.0.4', bindPort: 6443 },
      }),
    );
    assert.deepEqual(noKey?.controlPlane, {
      localAPIEndpoint: { advertiseAddress: '10.0.0.4', bindPort: 6443 },
    });
    assert.deepEqual(noKey?.nodeRegistration, {
      name: 'worker-1',
      criSocket: CRI,
      kubeletExtraArgs: [{ name: 'node-ip', value: '10.0.0.3' }],
    });
  });
});

describe('tuning profiles', () => {
  const untuned: [string, Partial<InitConfigInput>][] = [
    ['no profile', { tuning: undefined }],
    ["the 'default' profile", { tuning: 'default' }],
  ];
  for (const [name, patch] of untuned) {
    it(`${name} renders kubeadm's own waits and no TCG flags`, () => {
      const [init, cluster] = docs(initConfiguration({ ...initInput, ...patch }));
      assert.equal('timeouts' in init!, false);
      assert.deepEqual(cluster!.apiServer, {
        certSANs: ['10.0.0.2', 'api.sextant.example', '*.sextant.example', 'fd00::1'],
      });
      assert.equal('controllerManager' in cluster!, false);
      assert.equal('scheduler' in cluster!, false);
      const [join] = docs(joinConfiguration({ ...joinInput, ...patch }));
      assert.equal('timeouts' in join!, false);
    });
  }

  it("'qemu-tcg' renders the long waits, the API server's etcd checks and slow leader election", () => {
    const [init, cluster] = docs(initConfiguration(initInput));
    assert.deepEqual(init!.timeouts, KUBEADM_TIMEOUTS);
    assert.deepEqual((cluster!.apiServer as Record<string, unknown>).extraArgs, [
      { name: 'etcd-healthcheck-timeout', value: '30s' },
      { name: 'etcd-readycheck-timeout', value: '30s' },
    ]);
    assert.deepEqual(cluster!.controllerManager, { extraArgs: leaderElection });
    assert.deepEqual(cluster!.scheduler, { extraArgs: leaderElection });
    const [join] = docs(joinConfiguration(joinInput));
    assert.deepEqual(join!.timeouts, KUBEADM_TIMEOUTS);
  });
});
