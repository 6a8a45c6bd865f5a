import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import {
  IMAGE_REPOSITORY,
  INIT_TOKEN_TTL,
  type InitConfigInput,
  initConfiguration,
  type JoinConfigInput,
  joinConfiguration,
  KUBEADM_TIMEOUTS,
  KubeadmConfigError,
} from '../../../agent/kubeadm/config.js';

const TOKEN = 'abcdef.0123456789abcdef';
const CERT_KEY = 'f'.repeat(64);
const HASH = `sha256:${'0'.repeat(64)}`;

const initInput: InitConfigInput = {
  nodeName: 'cp-0',
  advertiseAddress: '10.0.0.2',
  bindPort: 6443,
  clusterName: 'sextant',
  kubernetesVersion: 'v1.31.2',
  serviceCidr: '10.96.0.0/12',
  podCidr: '10.244.0.0/16',
  apiServerCertSans: ['10.0.0.2', 'api.sextant.example', '*.sextant.example', 'fd00::1'],
  controlPlaneEndpoint: '10.0.0.2:6443',
  bootstrapToken: TOKEN,
  certificateKey: CERT_KEY,
};

const joinInput: JoinConfigInput = {
  nodeName: 'worker-1',
  nodeIp: '10.0.0.3',
  apiServerEndpoint: '10.0.0.2:6443',
  token: TOKEN,
  caCertHashes: [HASH],
};
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
  it('produces the exact v1beta4 shape', () => {
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

  it('names the CRI socket, the local image repository and TCG-sized timeouts', () => {
    const [init, cluster] = docs(
      initConfiguration({ ...initInput, imageRepository: 'registry.example/k8s' }),
    );
    assert.equal((init!.nodeRegistration as Record<string, unknown>).criSocket, CRI);
    assert.deepEqual(init!.timeouts, KUBEADM_TIMEOUTS);
    assert.equal(cluster!.imageRepository, 'registry.example/k8s');
    assert.equal(IMAGE_REPOSITORY, 'localhost/sextant');
  });

  it('accepts loopback as kubeadm does (it translates it to the host address)', () => {
    assert.doesNotThrow(() =>
      initConfiguration({
        ...initInput,
        advertiseAddress: '127.0.0.1',
        controlPlaneEndpoint: '127.0.0.1:6443',
      }),
    );
  });

  it('accepts pod ranges from one node mask to 16 bits wider, per family', () => {
    for (const podCidr of [
      '10.244.0.0/24',
      '172.16.0.0/12',
      '11.0.0.0/8',
      'fd00:10:244::/48',
      'fd00:10:244::/64',
    ]) {
      assert.doesNotThrow(() => initConfiguration({ ...initInput, podCidr }), podCidr);
    }
  });

  it('accepts IPv6 and dual-stack inputs', () => {
    const yaml = initConfiguration({
      ...initInput,
      advertiseAddress: 'fd00::2',
      serviceCidr: '10.96.0.0/12,fd00:10:96::/112',
      podCidr: 'fd00:10:244::/56',
      controlPlaneEndpoint: '[fd00::2]:6443',
    });
    assert.match(yaml, /controlPlaneEndpoint: "?\[fd00::2\]:6443"?/);
  });

  const bad: [Partial<Record<keyof InitConfigInput, unknown>>, string, RegExp][] = [
    [{ nodeName: '' }, 'nodeName', /required/],
    [{ nodeName: 'CP_0' }, 'nodeName', /RFC 1123/],
    [{ advertiseAddress: 'cp.example' }, 'advertiseAddress', /IPv4 or IPv6/],
    [{ advertiseAddress: '10.0.0.256' }, 'advertiseAddress', /IPv4 or IPv6/],
    [{ advertiseAddress: '0.0.0.0' }, 'advertiseAddress', /global unicast/],
    [{ advertiseAddress: '169.254.10.1' }, 'advertiseAddress', /global unicast/],
    [{ advertiseAddress: '224.0.0.251' }, 'advertiseAddress', /global unicast/],
    [{ advertiseAddress: '255.255.255.255' }, 'advertiseAddress', /global unicast/],
    [{ advertiseAddress: '::' }, 'advertiseAddress', /global unicast/],
    [{ advertiseAddress: 'fe80::1' }, 'advertiseAddress', /global unicast/],
    [{ advertiseAddress: 'ff02::1' }, 'advertiseAddress', /global unicast/],
    [{ advertiseAddress: '::ffff:169.254.0.1' }, 'advertiseAddress', /global unicast/],
    [{ bindPort: 0 }, 'bindPort', /1-65535/],
    [{ bindPort: 70000 }, 'bindPort', /1-65535/],
    [{ bindPort: 6443.5 }, 'bindPort', /1-65535/],
    [{ clusterName: 'My Cluster' }, 'clusterName', /RFC 1123/],
    [{ kubernetesVersion: '' }, 'kubernetesVersion', /required/],
    [{ kubernetesVersion: '1.31.2' }, 'kubernetesVersion', /vX\.Y\.Z/],
    [{ kubernetesVersion: 'v1.31' }, 'kubernetesVersion', /vX\.Y\.Z/],
    [{ serviceCidr: '10.96.0.0' }, 'serviceCidr', /missing "\/prefix"/],
    [{ serviceCidr: '10.96.0.0/33' }, 'serviceCidr', /prefix must be 0-32/],
    [{ serviceCidr: '10.96.0.1/12' }, 'serviceCidr', /host bits are set \(did you mean 10\.96\.0\.0\/12\?\)/],
    [{ serviceCidr: '10.0.0.0/8' }, 'serviceCidr', /too large/],
    [{ serviceCidr: 'bogus/12' }, 'serviceCidr', /not an IP address/],
    [{ serviceCidr: '10.96.0.0/12,10.97.0.0/16' }, 'serviceCidr', /one IPv4 and one IPv6/],
    [{ serviceCidr: '10.96.0.0/12,fd00::/112,10.1.0.0/16' }, 'serviceCidr', /pair/],
    [{ podCidr: 'fd00::1/64' }, 'podCidr', /host bits/],
    [{ podCidr: '10.244.0.0/25' }, 'podCidr', /smaller than one node's \/24/],
    [{ podCidr: '10.0.0.0/7' }, 'podCidr', /more than 2\^16 node ranges .* >= \/8/],
    [{ podCidr: 'fd00:10:244::/65' }, 'podCidr', /smaller than one node's \/64/],
    [{ podCidr: 'fd00::/47' }, 'podCidr', /prefix must be >= \/48/],
    [{ podCidr: '10.96.0.0/16' }, 'podCidr', /overlaps serviceCidr/],
    [{ serviceCidr: '10.96.0.0/29' }, 'serviceCidr', /too small/],
    [{ imageRepository: 'Bad Repo' }, 'imageRepository', /registry\/path/],
    [{ controlPlaneEndpoint: 'fd00::2:6443' }, 'controlPlaneEndpoint', /needs \[ \]/],
    [{ apiServerCertSans: ['ok.example', 'not_valid!'] }, 'apiServerCertSans[1]', /IP address or a DNS name/],
    [{ apiServerCertSans: 'x' }, 'apiServerCertSans', /list/],
    [{ controlPlaneEndpoint: 'host:99999' }, 'controlPlaneEndpoint', /port/],
    [{ controlPlaneEndpoint: 'bad host' }, 'controlPlaneEndpoint', /neither an IP address nor a host name/],
    [{ bootstrapTokenTtl: 'forever' }, 'bootstrapTokenTtl', /duration/],
    [{ kubeletExtraArgs: [{ name: '--v', value: '2' }] }, 'kubeletExtraArgs[0].name', /flag name/],
    [{ kubeletExtraArgs: [{ name: 'v', value: 2 }] }, 'kubeletExtraArgs[0].value', /string/],
  ];
  for (const [patch, field, why] of bad) {
    it(`rejects ${field} = ${JSON.stringify(Object.values(patch)[0])}`, () => {
      assert.throws(
        () => initConfiguration({ ...initInput, ...patch } as InitConfigInput),
        (e: unknown) => e instanceof KubeadmConfigError && e.field === field && why.test(e.message),
      );
    });
  }

  it('rejects malformed secrets without echoing them', () => {
    for (const [patch, field] of [
      [{ bootstrapToken: 'SECRET.TOKENVALUE1234567' }, 'bootstrapToken'],
      [{ certificateKey: 'SECRETKEY' }, 'certificateKey'],
    ] as const) {
      assert.throws(
        () => initConfiguration({ ...initInput, ...patch }),
        (e: unknown) => e instanceof KubeadmConfigError && e.field === field && !/SECRET/.test(e.message),
      );
    }
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

  const bad: [Record<string, unknown>, string, RegExp][] = [
    [{ nodeName: 'Worker 1' }, 'nodeName', /RFC 1123/],
    [{ nodeIp: undefined }, 'nodeIp', /required/],
    [{ nodeIp: 'worker-1' }, 'nodeIp', /IPv4 or IPv6/],
    [{ nodeIp: '169.254.0.3' }, 'nodeIp', /global unicast/],
    [{ kubeletExtraArgs: { 'node-ip': '10.0.0.9' } }, 'kubeletExtraArgs[0].name', /set through nodeIp/],
    [
      { controlPlane: { advertiseAddress: 'fe80::3', bindPort: 6443 } },
      'controlPlane.advertiseAddress',
      /global unicast/,
    ],
    [{ apiServerEndpoint: 'fd00::2:6443' }, 'apiServerEndpoint', /needs \[ \]/],
    [{ apiServerEndpoint: '10.0.0.2' }, 'apiServerEndpoint', /missing ":port"/],
    [{ apiServerEndpoint: '[fd00::2' }, 'apiServerEndpoint', /missing "\]"/],
    [{ apiServerEndpoint: '10.0.0.2:0' }, 'apiServerEndpoint', /1-65535/],
    [{ token: 'nope' }, 'token', /\[a-z0-9\]\{6\}/],
    [{ caCertHashes: [] }, 'caCertHashes', /at least one/],
    [{ caCertHashes: ['md5:abc'] }, 'caCertHashes[0]', /sha256:/],
    [{ kubeletExtraArgs: { '': 'x' } }, 'kubeletExtraArgs[0].name', /flag name/],
    [{ controlPlane: { advertiseAddress: 'x', bindPort: 6443 } }, 'controlPlane.advertiseAddress', /IPv4/],
    [{ controlPlane: { advertiseAddress: '10.0.0.4', bindPort: -1 } }, 'controlPlane.bindPort', /1-65535/],
    [
      { controlPlane: { advertiseAddress: '10.0.0.4', bindPort: 6443, certificateKey: 'SECRET' } },
      'controlPlane.certificateKey',
      /^((?!SECRET).)*$/,
    ],
  ];
  for (const [patch, field, why] of bad) {
    it(`rejects ${field}`, () => {
      assert.throws(
        () => joinConfiguration({ ...joinInput, ...patch } as JoinConfigInput),
        (e: unknown) => e instanceof KubeadmConfigError && e.field === field && why.test(e.message),
      );
    });
  }
});
