// The shape of sextant-conf.yaml (version v1) and its defaults for a local QEMU cluster.
import * as v from 'valibot';
import type { Measurements } from '../../attestation/measurements.js';
import { componentSchema } from '../../common/contracts/component.js';
import { DEFAULT_PORTS } from '../../common/contracts/ports.js';
import { cidrProblem, cidrsOverlap, isDnsLabel, isSan, parseCidr } from '../../common/net.js';
import { checkedString, integer, matching, strictObject } from '../../common/schema.js';
import { KMS_URI_FORMS, parseKmsUri } from '../kms/uri.js';

export const CONFIG_VERSION = 'v1';

const HEX64 = /^[0-9a-fA-F]{64}$/;
const K8S_VERSION = /^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$/;

const path = (what: string) => v.pipe(v.string(`expected ${what}`), v.nonEmpty(`expected ${what}`));
const cidr = checkedString('a CIDR like 10.96.0.0/12', (s) => cidrProblem(s) === undefined, cidrProblem);

function isVmSubnet(s: string): boolean {
  if (s === 'auto') return true;
  if (cidrProblem(s) !== undefined) return false;
  const c = parseCidr(s);
  return c.family === 4 && c.prefix >= 16 && c.prefix <= 28;
}

const qemuProvider = strictObject({
  /** Image build output directory (holds disk.img), or "auto": $SEXTANT_IMAGE_DIR, else image/build/current. */
  image: path('"auto" or the path of an image build directory'),
  vcpus: integer(1, 64),
  memoryMiB: integer(512, 1 << 20),
  firmware: v.picklist(['ovmf', 'seabios'], 'expected one of ovmf, seabios'),
  /** IPv4 subnet of the VMs' network namespace, or "auto" (derived from the workspace path). */
  subnet: checkedString('"auto" or an IPv4 CIDR with a prefix from /16 to /28', isVmSubnet, cidrProblem),
  /** A release directory (sextant release build): the provider serves its components to the nodes. */
  release: v.optional(path('the path of a release directory')),
});

const kubernetes = v.pipe(
  strictObject({
    /** e.g. v1.31.2 */
    version: matching(K8S_VERSION, 'a Kubernetes version like v1.31.2'),
    serviceCidr: cidr,
    podCidr: cidr,
    /** Extra API-server certificate SANs: DNS names or IP addresses. */
    apiServerCertSans: v.array(
      checkedString('a lowercase DNS name or an IP address', isSan),
      'expected a list',
    ),
    components: v.array(componentSchema, 'expected a list'),
  }),
  v.forward(
    v.check(
      (k) => !cidrsOverlap(parseCidr(k.serviceCidr), parseCidr(k.podCidr)),
      (issue) =>
        `overlaps kubernetes.serviceCidr (${(issue.input as { serviceCidr: string }).serviceCidr}); disjoint ranges are needed`,
    ),
    ['podCidr'],
  ),
);

const pcrValue = v.pipe(
  v.string((issue) =>
    typeof issue.input === 'number'
      ? 'expected 64 hex digits (a SHA-256 PCR value; quote the value in YAML)'
      : 'expected 64 hex digits (a SHA-256 PCR value)',
  ),
  v.regex(HEX64, 'expected 64 hex digits (a SHA-256 PCR value)'),
  v.toLowerCase(),
);

const measurements = v.pipe(
  v.record(
    v.pipe(
      v.string(),
      v.regex(/^(0|[1-9][0-9]?)$/, 'expected a PCR index from 0 to 23 as the key'),
      v.check((k) => Number(k) <= 23, 'expected a PCR index from 0 to 23 as the key'),
    ),
    strictObject({ expected: pcrValue, warnOnly: v.optional(v.boolean('expected true or false'), false) }),
    'expected a mapping of PCR index to measurement',
  ),
  v.transform((record): Measurements => {
    const out: Measurements = {};
    for (const [pcr, m] of Object.entries(record)) out[Number(pcr)] = m;
    return out;
  }),
);

const attestation = v.pipe(
  strictObject({
    variant: v.picklist(['qemu-vtpm'], 'expected one of qemu-vtpm'),
    /** Inline measurements (PCR → expected). Exactly one of `measurements` and `measurementsFile` is set. */
    measurements: v.optional(measurements),
    /** A measurements file (JSON), relative to the workspace or absolute. */
    measurementsFile: v.optional(path('a file path')),
    /** Detached signature of `measurementsFile`; only together with `measurementsPublicKey`. */
    measurementsSignature: v.optional(path('a file path')),
    /** PEM public key (Ed25519 or ECDSA P-256) the measurements file must be signed with. */
    measurementsPublicKey: v.optional(path('a file path')),
    /** The release key's SPKI fingerprint: a key file swapped in the workspace is refused, not just re-read. */
    measurementsKeyFingerprint: v.optional(
      matching(/^sha256:[0-9a-f]{64}$/, 'sha256: and 64 lowercase hex digits (the release key fingerprint)'),
    ),
    /** The serial of the pinned signed document: an older one (lower serial) is refused on every load. */
    measurementsSerial: v.optional(
      integer(1, Number.MAX_SAFE_INTEGER, 'a positive integer (the pinned measurements serial)'),
    ),
    /** PEM files the nodes' EK certificates chain to (root and intermediates), relative to the workspace or absolute. */
    ekCaCertificates: v.pipe(
      v.array(path('a file path'), 'expected a list'),
      v.minLength(1, 'expected at least one PEM file (the CA the EK certificates chain to)'),
    ),
  }),
  v.forward(
    v.check(
      (a) => a.measurements === undefined || a.measurementsFile === undefined,
      'give either attestation.measurements or measurementsFile, not both',
    ),
    ['measurementsFile'],
  ),
  v.forward(
    v.check(
      (a) => a.measurements !== undefined || a.measurementsFile !== undefined,
      'missing (expected attestation.measurements or measurementsFile)',
    ),
    ['measurements'],
  ),
  v.forward(
    v.check(
      (a) => a.measurementsSignature === undefined || a.measurementsFile !== undefined,
      'only allowed together with attestation.measurementsFile',
    ),
    ['measurementsSignature'],
  ),
  v.forward(
    v.check(
      (a) => a.measurementsPublicKey === undefined || a.measurementsFile !== undefined,
      'only allowed together with attestation.measurementsFile',
    ),
    ['measurementsPublicKey'],
  ),
  v.forward(
    v.check(
      (a) => a.measurementsSignature === undefined || a.measurementsPublicKey !== undefined,
      'missing (a signature needs the public key to check it with)',
    ),
    ['measurementsPublicKey'],
  ),
  v.forward(
    v.check(
      (a) => a.measurementsPublicKey === undefined || a.measurementsKeyFingerprint !== undefined,
      'missing (the release key\'s fingerprint is pinned with its path; rerun "sextant config generate qemu --measurements FILE")',
    ),
    ['measurementsKeyFingerprint'],
  ),
  v.forward(
    v.check(
      (a) => a.measurementsPublicKey === undefined || a.measurementsSerial !== undefined,
      'missing (the signed document\'s serial is pinned with the key; rerun "sextant config generate qemu --measurements FILE")',
    ),
    ['measurementsSerial'],
  ),
  v.forward(
    v.check(
      (a) =>
        (a.measurementsKeyFingerprint === undefined && a.measurementsSerial === undefined) ||
        a.measurementsPublicKey !== undefined,
      'missing (a pinned fingerprint or serial needs the key they belong to)',
    ),
    ['measurementsPublicKey'],
  ),
);

function kmsProblem(uri: string): string | undefined {
  try {
    parseKmsUri(uri);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Where the master secret lives (cli/kms/uri.ts): "file", a transit key or a PKCS#11 key; never a credential. */
// The value is never quoted back: a mistyped URI may hold a credential the parser refuses.
const kms = v.pipe(
  v.string(`expected a kms URI: ${KMS_URI_FORMS}`),
  v.check(
    (s) => kmsProblem(s) === undefined,
    (issue) => `not a usable kms URI: ${kmsProblem(issue.input as string)}`,
  ),
);

/** sextant-conf.yaml, version v1: unknown keys are errors, hex comes out lowercase, optional flags get defaults. */
export const configSchema = v.pipe(
  strictObject({
    version: v.literal(CONFIG_VERSION, `expected ${CONFIG_VERSION}`),
    /** Cluster name: a DNS label of at most 32 characters (node names are derived from it). */
    name: checkedString(
      'a DNS label of at most 32 characters (lowercase letters, digits, "-")',
      (s) => s.length <= 32 && isDnsLabel(s),
    ),
    provider: strictObject({ qemu: qemuProvider }),
    nodes: strictObject({ controlPlanes: integer(1, 99), workers: integer(0, 99) }),
    kubernetes,
    attestation,
    initPort: integer(1, 65535, 'a port 1-65535'),
    joinServicePort: integer(1, 65535, 'a port 1-65535'),
    kms: v.optional(kms, 'file'),
  }),
  v.forward(
    v.check(
      (c) => c.initPort !== c.joinServicePort,
      (issue) => `must differ from initPort (${(issue.input as { initPort: number }).initPort})`,
    ),
    ['joinServicePort'],
  ),
);

export type SextantConfig = v.InferOutput<typeof configSchema>;

/** The Kubernetes version scripts/build-kubernetes.sh builds (kubernetes/go.mod); a release names its own. */
export const DEFAULT_KUBERNETES_VERSION = 'v1.34.4';
/** Where the QEMU provider keeps the private swtpm-localca CA its TPMs' EK certificates are issued by. */
export const QEMU_EK_CA_CERTIFICATES = [
  'qemu/ca/localca/swtpm-localca-rootca-cert.pem',
  'qemu/ca/localca/issuercert.pem',
];

/** The defaults of a local QEMU cluster; `measurements` stays empty until an image's measurements are given. */
export function defaultQemuConfig(): SextantConfig {
  return {
    version: CONFIG_VERSION,
    name: 'sextant',
    provider: {
      qemu: { image: 'auto', vcpus: 2, memoryMiB: 3072, firmware: 'ovmf', subnet: 'auto' },
    },
    nodes: { controlPlanes: 1, workers: 1 },
    kubernetes: {
      version: DEFAULT_KUBERNETES_VERSION,
      serviceCidr: '10.96.0.0/12',
      podCidr: '10.244.0.0/16',
      apiServerCertSans: [],
      components: [],
    },
    attestation: {
      variant: 'qemu-vtpm',
      measurements: {},
      ekCaCertificates: [...QEMU_EK_CA_CERTIFICATES],
    },
    initPort: DEFAULT_PORTS.init,
    joinServicePort: DEFAULT_PORTS.joinService,
    kms: 'file',
  };
}
