// Checks a parsed sextant-conf.yaml document against the v1 schema. Every error names the file, the key path
// (`nodes.workers`, `kubernetes.components[0].sha256`) and what was expected; unknown keys are errors so a typo
// never silently falls back to a default.
import { isAbsolute } from 'node:path';
import type { Measurement, Measurements } from '../../attestation/measurements.js';
import { cidrsOverlap, isDnsLabel, isDnsName, parseCidr, parseIp } from './net.js';
import {
  type AttestationConfig,
  CONFIG_VERSION,
  type ComponentConfig,
  type KubernetesConfig,
  type QemuProviderConfig,
  type SextantConfig,
} from './schema.js';

export const CONFIG_FILE = 'sextant-conf.yaml';

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly file: string,
    /** Dotted key path, empty for the document itself. */
    readonly keyPath: string,
    readonly detail: string,
  ) {
    super(keyPath ? `${file}: ${keyPath}: ${detail}` : `${file}: ${detail}`);
  }
}

/** How a wrong value is shown: enough to recognise it, never more than a short excerpt. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Array.isArray(v)) return 'a list';
  return 'a mapping';
}

const HEX64 = /^[0-9a-fA-F]{64}$/;
const K8S_VERSION = /^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$/;

class Checker {
  constructor(readonly file: string) {}

  fail(path: string, detail: string): never {
    throw new ConfigError(this.file, path, detail);
  }

  expected(path: string, what: string, got: unknown): never {
    this.fail(path, `expected ${what}, got ${describeValue(got)}`);
  }

  /** A mapping with exactly the allowed keys; `required` must all be present. */
  mapping(
    value: unknown,
    path: string,
    allowed: readonly string[],
    required: readonly string[] = allowed,
  ): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.expected(path || '(document)', 'a mapping', value);
    }
    const m = value as Record<string, unknown>;
    for (const key of Object.keys(m)) {
      if (!allowed.includes(key)) {
        this.fail(join(path, key), `unknown key (expected one of: ${allowed.join(', ')})`);
      }
    }
    for (const key of required) {
      if (m[key] === undefined) this.fail(join(path, key), 'missing');
    }
    return m;
  }

  integer(value: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      this.expected(path, `an integer ≥ ${min}`, value);
    }
    if (value > max) this.expected(path, `an integer ≤ ${max}`, value);
    return value;
  }

  string(value: unknown, path: string, what = 'a non-empty string'): string {
    if (typeof value !== 'string' || value.length === 0) this.expected(path, what, value);
    return value;
  }

  boolean(value: unknown, path: string): boolean {
    if (typeof value !== 'boolean') this.expected(path, 'true or false', value);
    return value;
  }

  list(value: unknown, path: string): unknown[] {
    if (!Array.isArray(value)) this.expected(path, 'a list', value);
    return value;
  }

  oneOf<T extends string>(value: unknown, path: string, choices: readonly T[]): T {
    if (typeof value !== 'string' || !choices.includes(value as T)) {
      this.expected(path, `one of ${choices.join(', ')}`, value);
    }
    return value as T;
  }

  cidr(value: unknown, path: string) {
    const s = this.string(value, path, 'a CIDR like 10.96.0.0/12');
    const c = parseCidr(s);
    if (typeof c === 'string')
      this.fail(path, `expected a CIDR like 10.96.0.0/12, got ${describeValue(s)} (${c})`);
    return c;
  }
}

function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

function checkProvider(c: Checker, value: unknown): { qemu: QemuProviderConfig } {
  const p = c.mapping(value, 'provider', ['qemu']);
  const q = c.mapping(p.qemu, 'provider.qemu', ['image', 'vcpus', 'memoryMiB', 'firmware', 'subnet']);
  const subnet = c.string(q.subnet, 'provider.qemu.subnet', '"auto" or an IPv4 CIDR');
  if (subnet !== 'auto') {
    const cidr = c.cidr(subnet, 'provider.qemu.subnet');
    if (cidr.family !== 4 || cidr.prefix < 16 || cidr.prefix > 28) {
      c.expected('provider.qemu.subnet', '"auto" or an IPv4 CIDR with a prefix from /16 to /28', subnet);
    }
  }
  return {
    qemu: {
      image: c.string(q.image, 'provider.qemu.image', '"auto" or the path of an image build directory'),
      vcpus: c.integer(q.vcpus, 'provider.qemu.vcpus', 1, 64),
      memoryMiB: c.integer(q.memoryMiB, 'provider.qemu.memoryMiB', 512, 1 << 20),
      firmware: c.oneOf(q.firmware, 'provider.qemu.firmware', ['ovmf', 'seabios'] as const),
      subnet,
    },
  };
}

function checkComponent(c: Checker, value: unknown, path: string): ComponentConfig {
  const m = c.mapping(
    value,
    path,
    ['url', 'sha256', 'installPath', 'extract'],
    ['url', 'sha256', 'installPath'],
  );
  const url = c.string(m.url, `${path}.url`, 'an http, https or file URL');
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || !['http:', 'https:', 'file:'].includes(parsed.protocol)) {
    c.expected(`${path}.url`, 'an http, https or file URL', url);
  }
  if (parsed.username || parsed.password) {
    // credentials in a URL would end up in logs on the node
    c.fail(`${path}.url`, 'expected a URL without user name or password');
  }
  if (typeof m.sha256 !== 'string' || !HEX64.test(m.sha256)) {
    c.expected(`${path}.sha256`, '64 hex digits (the SHA-256 of the download)', m.sha256);
  }
  const installPath = c.string(m.installPath, `${path}.installPath`, 'an absolute path');
  if (!isAbsolute(installPath) || installPath.split('/').includes('..')) {
    c.expected(`${path}.installPath`, 'an absolute path without ".."', installPath);
  }
  return {
    url,
    sha256: m.sha256.toLowerCase(),
    installPath,
    extract: m.extract === undefined ? false : c.boolean(m.extract, `${path}.extract`),
  };
}

function checkKubernetes(c: Checker, value: unknown): KubernetesConfig {
  const k = c.mapping(value, 'kubernetes', [
    'version',
    'serviceCidr',
    'podCidr',
    'apiServerCertSans',
    'components',
  ]);
  if (typeof k.version !== 'string' || !K8S_VERSION.test(k.version)) {
    c.expected('kubernetes.version', 'a Kubernetes version like v1.31.2', k.version);
  }
  const service = c.cidr(k.serviceCidr, 'kubernetes.serviceCidr');
  const pod = c.cidr(k.podCidr, 'kubernetes.podCidr');
  if (cidrsOverlap(service, pod)) {
    c.fail(
      'kubernetes.podCidr',
      `overlaps kubernetes.serviceCidr (${k.serviceCidr}); expected disjoint ranges`,
    );
  }
  const sans = c.list(k.apiServerCertSans, 'kubernetes.apiServerCertSans').map((san, i) => {
    const path = `kubernetes.apiServerCertSans[${i}]`;
    if (typeof san !== 'string' || (!parseIp(san) && !isDnsName(san))) {
      c.expected(path, 'a lowercase DNS name or an IP address', san);
    }
    return san;
  });
  const components = c
    .list(k.components, 'kubernetes.components')
    .map((comp, i) => checkComponent(c, comp, `kubernetes.components[${i}]`));
  return {
    version: k.version,
    serviceCidr: k.serviceCidr as string,
    podCidr: k.podCidr as string,
    apiServerCertSans: sans,
    components,
  };
}

function checkMeasurements(c: Checker, value: unknown, path: string): Measurements {
  const m = c.mapping(value, path, Object.keys(value ?? {}), []);
  const out: Measurements = {};
  for (const [key, entry] of Object.entries(m)) {
    const at = `${path}.${key}`;
    if (!/^(0|[1-9][0-9]?)$/.test(key) || Number(key) > 23) {
      c.fail(at, 'expected a PCR index from 0 to 23 as the key');
    }
    const e = c.mapping(entry, at, ['expected', 'warnOnly'], ['expected']);
    if (typeof e.expected !== 'string' || !HEX64.test(e.expected)) {
      const hint = typeof e.expected === 'number' ? ' (quote the value in YAML)' : '';
      c.expected(`${at}.expected`, `64 hex digits (a SHA-256 PCR value)${hint}`, e.expected);
    }
    const measurement: Measurement = {
      expected: e.expected.toLowerCase(),
      warnOnly: e.warnOnly === undefined ? false : c.boolean(e.warnOnly, `${at}.warnOnly`),
    };
    out[Number(key)] = measurement;
  }
  return out;
}

function checkAttestation(c: Checker, value: unknown): AttestationConfig {
  const a = c.mapping(
    value,
    'attestation',
    [
      'variant',
      'measurements',
      'measurementsFile',
      'measurementsSignature',
      'measurementsPublicKey',
      'ekCaCertificates',
    ],
    ['variant', 'ekCaCertificates'],
  );
  const out: Omit<AttestationConfig, 'ekCaCertificates'> = {
    variant: c.oneOf(a.variant, 'attestation.variant', ['qemu-vtpm'] as const),
  };
  if (a.measurements !== undefined && a.measurementsFile !== undefined) {
    c.fail(
      'attestation.measurementsFile',
      'expected either attestation.measurements or measurementsFile, not both',
    );
  }
  if (a.measurementsFile !== undefined) {
    out.measurementsFile = c.string(a.measurementsFile, 'attestation.measurementsFile', 'a file path');
  } else if (a.measurements !== undefined) {
    out.measurements = checkMeasurements(c, a.measurements, 'attestation.measurements');
  } else {
    c.fail('attestation.measurements', 'missing (expected attestation.measurements or measurementsFile)');
  }
  for (const key of ['measurementsSignature', 'measurementsPublicKey'] as const) {
    if (a[key] === undefined) continue;
    if (a.measurementsFile === undefined) {
      c.fail(`attestation.${key}`, 'only allowed together with attestation.measurementsFile');
    }
    out[key] = c.string(a[key], `attestation.${key}`, 'a file path');
  }
  if (out.measurementsSignature !== undefined && out.measurementsPublicKey === undefined) {
    c.fail(
      'attestation.measurementsPublicKey',
      'missing (a signature needs the public key to check it with)',
    );
  }
  const cas = c.list(a.ekCaCertificates, 'attestation.ekCaCertificates');
  if (cas.length === 0) {
    c.fail(
      'attestation.ekCaCertificates',
      'expected at least one PEM file (the CA the EK certificates chain to)',
    );
  }
  const ekCaCertificates = cas.map((p, i) =>
    c.string(p, `attestation.ekCaCertificates[${i}]`, 'a file path'),
  );
  return { ...out, ekCaCertificates };
}

/** Validates a parsed document; returns a fresh, normalised config (hex lowercased, defaults of optional flags). */
export function validateConfig(doc: unknown, file: string = CONFIG_FILE): SextantConfig {
  const c: Checker = new Checker(file);
  const top = c.mapping(doc, '', [
    'version',
    'name',
    'provider',
    'nodes',
    'kubernetes',
    'attestation',
    'initPort',
    'joinServicePort',
  ]);
  if (top.version !== CONFIG_VERSION) c.expected('version', CONFIG_VERSION, top.version);
  const name = top.name;
  if (typeof name !== 'string' || name.length > 32 || !isDnsLabel(name)) {
    c.expected('name', 'a DNS label of at most 32 characters (lowercase letters, digits, "-")', name);
  }
  const provider = checkProvider(c, top.provider);
  const n = c.mapping(top.nodes, 'nodes', ['controlPlanes', 'workers']);
  const nodes = {
    controlPlanes: c.integer(n.controlPlanes, 'nodes.controlPlanes', 1, 99),
    workers: c.integer(n.workers, 'nodes.workers', 0, 99),
  };
  const kubernetes = checkKubernetes(c, top.kubernetes);
  const attestation = checkAttestation(c, top.attestation);
  const initPort = c.integer(top.initPort, 'initPort', 1, 65535);
  const joinServicePort = c.integer(top.joinServicePort, 'joinServicePort', 1, 65535);
  if (initPort === joinServicePort)
    c.fail('joinServicePort', `expected a port other than initPort (${initPort})`);
  return {
    version: CONFIG_VERSION,
    name,
    provider,
    nodes,
    kubernetes,
    attestation,
    initPort,
    joinServicePort,
  };
}
