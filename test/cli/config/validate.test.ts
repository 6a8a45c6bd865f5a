import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../../cli/config/file.js';
import { defaultQemuConfig } from '../../../cli/config/schema.js';
import { ConfigError, validateConfig } from '../../../cli/config/validate.js';
import { validateState } from '../../../cli/workspace/state.js';

const HEX = 'ab'.repeat(32);

// biome-ignore lint/suspicious/noExplicitAny: a config edited freely, to make it wrong in every way
type Loose = Record<string, any>;

/** The default config with one change: `set(config)` edits a fresh copy. */
function withChange(set: (c: Loose) => void): unknown {
  const c = structuredClone(defaultQemuConfig()) as Loose;
  c.attestation.measurements = { 4: { expected: HEX } };
  set(c);
  return c;
}

describe('sextant-conf.yaml validation', () => {
  it('accepts the defaults and normalises: hex lowercase, warnOnly and extract default false, PCR keys numbers', () => {
    const c = validateConfig(
      withChange((c) => {
        c.attestation.measurements = { 4: { expected: HEX.toUpperCase() } };
        c.kubernetes.components = [
          { url: 'https://h/k', sha256: HEX.toUpperCase(), installPath: '/usr/bin/k' },
        ];
      }),
    );
    assert.deepEqual(c.attestation.measurements, { 4: { expected: HEX, warnOnly: false } });
    assert.deepEqual(c.kubernetes.components, [
      { url: 'https://h/k', sha256: HEX, installPath: '/usr/bin/k', extract: false },
    ]);
  });

  it('names the key path and what was expected, for every kind of mistake', () => {
    const cases: [string, (c: Loose) => void, string, RegExp][] = [
      [
        'unknown key',
        (c) => (c.nodez = 1),
        'nodez',
        /^unknown key \(expected one of: version, name, provider/,
      ],
      ['missing key', (c) => delete c.nodes, 'nodes', /^expected a mapping, got nothing$/],
      ['version', (c) => (c.version = 'v2'), 'version', /^expected v1, got "v2"$/],
      [
        'name',
        (c) => (c.name = 'Not_A_Label'),
        'name',
        /^expected a DNS label of at most 32 .*got "Not_A_Label"$/,
      ],
      ['long name', (c) => (c.name = 'a'.repeat(33)), 'name', /at most 32/],
      [
        'vcpus',
        (c) => (c.provider.qemu.vcpus = 0),
        'provider.qemu.vcpus',
        /^expected an integer from 1 to 64, got 0$/,
      ],
      [
        'workers',
        (c) => (c.nodes.workers = 1.5),
        'nodes.workers',
        /^expected an integer from 0 to 99, got 1\.5$/,
      ],
      [
        'firmware',
        (c) => (c.provider.qemu.firmware = 'uefi'),
        'provider.qemu.firmware',
        /expected one of ovmf, seabios, got "uefi"/,
      ],
      [
        'subnet v6',
        (c) => (c.provider.qemu.subnet = 'fd00::/64'),
        'provider.qemu.subnet',
        /IPv4 CIDR with a prefix from \/16 to \/28/,
      ],
      [
        'subnet bits',
        (c) => (c.provider.qemu.subnet = '10.0.0.1/24'),
        'provider.qemu.subnet',
        /host bits are set \(did you mean 10\.0\.0\.0\/24\?\)/,
      ],
      [
        'k8s version',
        (c) => (c.kubernetes.version = '1.31'),
        'kubernetes.version',
        /expected a Kubernetes version like v1\.31\.2, got "1\.31"/,
      ],
      [
        'service cidr',
        (c) => (c.kubernetes.serviceCidr = '10.96.0.0'),
        'kubernetes.serviceCidr',
        /expected a CIDR like 10\.96\.0\.0\/12, got "10\.96\.0\.0" \(missing "\/prefix"\)/,
      ],
      [
        'overlap',
        (c) => (c.kubernetes.podCidr = '10.96.0.0/16'),
        'kubernetes.podCidr',
        /overlaps kubernetes\.serviceCidr \(10\.96\.0\.0\/12\)/,
      ],
      [
        'san',
        (c) => (c.kubernetes.apiServerCertSans = ['ok.example', 'a..b']),
        'kubernetes.apiServerCertSans[1]',
        /DNS name or an IP address, got "a\.\.b"/,
      ],
      [
        'component sha',
        (c) => (c.kubernetes.components = [{ url: 'https://h/k', sha256: 'x', installPath: '/k' }]),
        'kubernetes.components[0].sha256',
        /expected 64 hex digits/,
      ],
      [
        'component url',
        (c) => (c.kubernetes.components = [{ url: 'https://u:p@h/k', sha256: HEX, installPath: '/k' }]),
        'kubernetes.components[0].url',
        /user name or password/,
      ],
      [
        'component path',
        (c) => (c.kubernetes.components = [{ url: 'https://h/k', sha256: HEX, installPath: 'k' }]),
        'kubernetes.components[0].installPath',
        /not absolute/,
      ],
      [
        'pcr key',
        (c) => (c.attestation.measurements = { 24: { expected: HEX } }),
        'attestation.measurements.24',
        /PCR index from 0 to 23/,
      ],
      [
        'pcr number',
        (c) => (c.attestation.measurements = { 4: { expected: 1234 } }),
        'attestation.measurements.4.expected',
        /quote the value in YAML/,
      ],
      [
        'both',
        (c) => (c.attestation.measurementsFile = 'm.json'),
        'attestation.measurementsFile',
        /either attestation\.measurements or measurementsFile, not both/,
      ],
      [
        'neither',
        (c) => delete c.attestation.measurements,
        'attestation.measurements',
        /missing \(expected attestation\.measurements or measurementsFile\)/,
      ],
      [
        'sig alone',
        (c) => {
          delete c.attestation.measurements;
          c.attestation.measurementsFile = 'm';
          c.attestation.measurementsSignature = 's';
        },
        'attestation.measurementsPublicKey',
        /a signature needs the public key/,
      ],
      [
        'key without file',
        (c) => (c.attestation.measurementsPublicKey = 'k.pem'),
        'attestation.measurementsPublicKey',
        /only allowed together with attestation\.measurementsFile/,
      ],
      [
        'key without its fingerprint',
        (c) => {
          delete c.attestation.measurements;
          c.attestation.measurementsFile = 'm';
          c.attestation.measurementsPublicKey = 'k.pem';
          c.attestation.measurementsSerial = 1;
        },
        'attestation.measurementsKeyFingerprint',
        /missing \(the release key's fingerprint is pinned with its path/,
      ],
      [
        'key without the serial',
        (c) => {
          delete c.attestation.measurements;
          c.attestation.measurementsFile = 'm';
          c.attestation.measurementsPublicKey = 'k.pem';
          c.attestation.measurementsKeyFingerprint = `sha256:${HEX}`;
        },
        'attestation.measurementsSerial',
        /missing \(the signed document's serial is pinned with the key/,
      ],
      [
        'fingerprint not sha256',
        (c) => (c.attestation.measurementsKeyFingerprint = HEX),
        'attestation.measurementsKeyFingerprint',
        /expected sha256: and 64 lowercase hex digits/,
      ],
      [
        'serial zero',
        (c) => (c.attestation.measurementsSerial = 0),
        'attestation.measurementsSerial',
        /expected a positive integer/,
      ],
      [
        'pin without the key',
        (c) => {
          delete c.attestation.measurements;
          c.attestation.measurementsFile = 'm';
          c.attestation.measurementsSerial = 3;
        },
        'attestation.measurementsPublicKey',
        /a pinned fingerprint or serial needs the key/,
      ],
      [
        'no CA',
        (c) => (c.attestation.ekCaCertificates = []),
        'attestation.ekCaCertificates',
        /at least one PEM file/,
      ],
      [
        'ports',
        (c) => (c.joinServicePort = c.initPort),
        'joinServicePort',
        /must differ from initPort \(9000\)/,
      ],
      ['port range', (c) => (c.initPort = 70000), 'initPort', /expected a port 1-65535, got 70000/],
      ['not a mapping', (c) => (c.nodes = [1]), 'nodes', /expected a mapping, got a list/],
    ];
    for (const [label, change, keyPath, detail] of cases) {
      assert.throws(
        () => validateConfig(withChange(change), 'sextant-conf.yaml'),
        (err: unknown) =>
          err instanceof ConfigError &&
          err.keyPath === keyPath &&
          detail.test(err.detail) &&
          err.message === `sextant-conf.yaml: ${keyPath}: ${err.detail}`,
        label,
      );
    }
    assert.throws(() => validateConfig(5), /sextant-conf\.yaml: expected a mapping, got 5/);
  });

  it('reports YAML problems and an empty file by file name', () => {
    assert.throws(() => parseConfig('a: [', 'x.yaml'), /^ConfigError: x\.yaml: not valid YAML/);
    assert.throws(() => parseConfig('', 'x.yaml'), /x\.yaml: the file is empty/);
  });
});

describe('sextant-state.yaml validation', () => {
  const ok = {
    clusterId: Buffer.alloc(32, 1).toString('base64'),
    ownerId: Buffer.alloc(32, 2).toString('base64'),
    endpoint: '10.0.0.1:6443',
    initNode: '[FD00::1]:9000',
    createdAt: '2026-11-29T17:00:00.000Z',
  };

  it('reads IDs as bytes, endpoints normalised, the time as a Date', () => {
    const s = validateState(ok);
    assert.equal(s.clusterId.length, 32);
    assert.equal(s.initNode, '[fd00::1]:9000');
    assert.equal(s.createdAt.toISOString(), ok.createdAt);
  });

  it('names the key and what was expected', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ clusterId: 'AAAA' }, /sextant-state\.yaml: clusterId: expected base64 of 32 bytes, got "AAAA"$/],
      [
        { endpoint: 'fd00::1:6443' },
        /endpoint: expected host:port, got "fd00::1:6443" \(an IPv6 address needs \[ \]/,
      ],
      [{ createdAt: 'yesterday' }, /createdAt: expected an ISO 8601 timestamp, got "yesterday"/],
      [
        { extra: 1 },
        /extra: unknown key \(expected one of: clusterId, ownerId, endpoint, initNode, createdAt\)/,
      ],
      [{ ownerId: undefined }, /ownerId: (missing|expected base64)/],
    ];
    for (const [patch, why] of cases)
      assert.throws(() => validateState({ ...ok, ...patch }), why, JSON.stringify(patch));
  });
});
