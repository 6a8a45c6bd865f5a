import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkInitConfigInput,
  checkJoinConfigInput,
  type InitConfigInput,
  type JoinConfigInput,
  KubeadmConfigError,
} from '../../../agent/kubeadm/config-input.js';
import { initInput, joinInput } from './inputs.js';

describe('checkInitConfigInput', () => {
  it('accepts loopback as kubeadm does (it translates it to the host address)', () => {
    assert.doesNotThrow(() =>
      checkInitConfigInput({
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
      assert.doesNotThrow(() => checkInitConfigInput({ ...initInput, podCidr }), podCidr);
    }
  });

  it('accepts IPv6 and dual-stack inputs', () => {
    const input = checkInitConfigInput({
      ...initInput,
      advertiseAddress: 'fd00::2',
      serviceCidr: '10.96.0.0/12,fd00:10:96::/112',
      podCidr: 'fd00:10:244::/56',
      controlPlaneEndpoint: '[fd00::2]:6443',
    });
    assert.equal(input.controlPlaneEndpoint, '[fd00::2]:6443');
  });

  const bad: [Record<string, unknown>, string, RegExp][] = [
    [{ nodeName: '' }, 'nodeName', /expected a lowercase RFC 1123 subdomain, got ""/],
    [{ nodeName: undefined }, 'nodeName', /expected a lowercase RFC 1123 subdomain, got nothing/],
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
    [{ kubernetesVersion: '' }, 'kubernetesVersion', /expected vX\.Y\.Z/],
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
    [{ podCidr: 16 }, 'podCidr', /^podCidr: expected a pod CIDR, or an IPv4,IPv6 pair, got 16$/],
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
    [{ bindPort: '6443' }, 'bindPort', /integer port in 1-65535, got "6443"/],
    [{ kubeletExtraArgs: 'v=2' }, 'kubeletExtraArgs', /list of \{name, value\} flags/],
    [{ tuning: 'kvm' }, 'tuning', /one of default, qemu-tcg, got "kvm"/],
    [{ kubeadmTuning: 'qemu-tcg' }, 'kubeadmTuning', /unknown key \(expected one of: .*tuning/],
    [{ controlPlaneEndpoint: 'host:99999' }, 'controlPlaneEndpoint', /port/],
    [{ controlPlaneEndpoint: 'bad host' }, 'controlPlaneEndpoint', /neither an IP address nor a host name/],
    [{ bootstrapTokenTtl: 'forever' }, 'bootstrapTokenTtl', /duration/],
    [{ kubeletExtraArgs: [{ name: '--v', value: '2' }] }, 'kubeletExtraArgs[0].name', /flag name/],
    [{ kubeletExtraArgs: [{ name: 'v', value: 2 }] }, 'kubeletExtraArgs[0].value', /string/],
  ];
  for (const [patch, field, why] of bad) {
    it(`rejects ${field} = ${JSON.stringify(Object.values(patch)[0])}`, () => {
      assert.throws(
        () => checkInitConfigInput({ ...initInput, ...patch } as InitConfigInput),
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
        () => checkInitConfigInput({ ...initInput, ...patch }),
        (e: unknown) =>
          e instanceof KubeadmConfigError &&
          e.field === field &&
          /expected/.test(e.message) &&
          !/SECRET/.test(e.message),
      );
    }
    for (const [patch, field] of [
      [{ token: 'SECRET.tokenvalue1234567' }, 'token'],
      [
        { controlPlane: { advertiseAddress: '10.0.0.4', bindPort: 6443, certificateKey: 'SECRET' } },
        'controlPlane.certificateKey',
      ],
    ] as const) {
      assert.throws(
        () => checkJoinConfigInput({ ...joinInput, ...patch }),
        (e: unknown) =>
          e instanceof KubeadmConfigError &&
          e.field === field &&
          /expected/.test(e.message) &&
          !/SECRET/.test(e.message),
      );
    }
  });
});

describe('checkJoinConfigInput', () => {
  const bad: [Record<string, unknown>, string, RegExp][] = [
    [{ nodeName: 'Worker 1' }, 'nodeName', /RFC 1123/],
    [{ nodeIp: undefined }, 'nodeIp', /expected an IPv4 or IPv6 address, got nothing/],
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
    [{ token: undefined }, 'token', /\[a-z0-9\]\{6\}/],
    [{ kubeletExtraArgs: { v: 2 } }, 'kubeletExtraArgs[0].value', /expected a string/],
    [{ kubeletExtraArgs: 'v=2' }, 'kubeletExtraArgs', /name → value mapping/],
    [{ tuning: 'kvm' }, 'tuning', /one of default, qemu-tcg/],
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
        () => checkJoinConfigInput({ ...joinInput, ...patch } as JoinConfigInput),
        (e: unknown) => e instanceof KubeadmConfigError && e.field === field && why.test(e.message),
      );
    });
  }
});

describe('checkJoinConfigInput: what it hands the renderer', () => {
  const args: [string, JoinConfigInput['kubeletExtraArgs'], { name: string; value: string }[]][] = [
    ['none', undefined, []],
    ['a list', [{ name: 'v', value: '2' }], [{ name: 'v', value: '2' }]],
    [
      'a mapping',
      { v: '2', 'max-pods': '50' },
      [
        { name: 'v', value: '2' },
        { name: 'max-pods', value: '50' },
      ],
    ],
  ];
  for (const [name, given, want] of args) {
    it(`kubelet flags given as ${name} come out as a list`, () => {
      assert.deepEqual(
        checkJoinConfigInput({ ...joinInput, kubeletExtraArgs: given }).kubeletExtraArgs,
        want,
      );
    });
  }

  it('takes each tuning profile by name', () => {
    for (const tuning of ['default', 'qemu-tcg'] as const) {
      assert.equal(checkJoinConfigInput({ ...joinInput, tuning }).tuning, tuning);
      assert.equal(checkInitConfigInput({ ...initInput, tuning }).tuning, tuning);
    }
  });
});
