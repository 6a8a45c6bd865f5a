// What the agent asks kubeadm for (InitConfigInput, JoinConfigInput) and the valibot schemas that check it before
// anything is rendered, the way kubeadm itself would refuse it, but naming our field and what was expected.
import * as v from 'valibot';
import { type KubeadmTuning, kubeadmTuningSchema } from '../../common/contracts/kubeadm-tuning.js';
import { DEFAULT_PORTS } from '../../common/contracts/ports.js';
import {
  type Cidr,
  cidrProblem,
  cidrsOverlap,
  endpointProblem,
  isDnsSubdomain,
  isIp,
  isSan,
  parseCidr,
  parseIp,
} from '../../common/net.js';
import {
  checkedString,
  integer,
  matching,
  parseWith,
  SchemaError,
  strictObject,
} from '../../common/schema.js';

/** Thrown for a bad kubeadm input; `field` names it as the caller passed it. */
export class KubeadmConfigError extends Error {
  override name = 'KubeadmConfigError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** v1beta4 replaced string maps with lists so that a flag may repeat. */
export interface KubeadmArg {
  name: string;
  value: string;
}

export interface InitConfigInput {
  nodeName: string;
  /** This node's IP; the local API server advertises it. */
  advertiseAddress: string;
  bindPort: number;
  clusterName: string;
  /** vX.Y.Z */
  kubernetesVersion: string;
  /** One CIDR, or an IPv4 and an IPv6 CIDR separated by a comma (dual stack). */
  serviceCidr: string;
  podCidr?: string;
  apiServerCertSans: string[];
  /** The cluster-wide API endpoint, host or host:port. */
  controlPlaneEndpoint: string;
  /**
   * Secret. A token that joining nodes may use. When absent, init still gets one, random and living INIT_TOKEN_TTL,
   * so kubeadm does not leave its own 24-hour default token behind.
   */
  bootstrapToken?: string;
  /** How long bootstrapToken lives, as a Go duration. Default 1h (INIT_TOKEN_TTL for the random one). */
  bootstrapTokenTtl?: string;
  /** Default IMAGE_REPOSITORY. */
  imageRepository?: string;
  /** Secret. Encrypts the control-plane certificates uploaded for control-plane joins. */
  certificateKey?: string;
  kubeletExtraArgs?: KubeadmArg[];
  /** The platform's tuning (tuning.ts), from the instance metadata; absent, kubeadm's defaults. */
  tuning?: KubeadmTuning;
}

export interface JoinConfigInput {
  nodeName: string;
  /** This node's IP, given to kubelet as node-ip: a VM with several interfaces must not register the wrong one. */
  nodeIp: string;
  /** host:port of an API server of the cluster. */
  apiServerEndpoint: string;
  /** Secret. The bootstrap token from the join ticket. */
  token: string;
  /** "sha256:<hex>" pins of the cluster CA's public key. */
  caCertHashes: string[];
  kubeletExtraArgs?: KubeadmArg[] | Record<string, string>;
  /** Present for a control-plane join. */
  controlPlane?: {
    advertiseAddress: string;
    bindPort: number;
    /** Secret. Decrypts the uploaded control-plane certificates; omit when the files were handed over directly. */
    certificateKey?: string;
  };
  /** As InitConfigInput.tuning. */
  tuning?: KubeadmTuning;
}

/** The controller manager's default per-node pod CIDR sizes (kubeadm sets no --node-cidr-mask-size here). */
const NODE_MASK = { 4: 24, 6: 64 } as const;
/** kubeadm's PodSubnetNodeMaskMaxDiff: more than 2^16 node CIDRs overflow the allocator's bitmap. */
const MAX_NODE_MASK_DIFF = 16;
/** kubeadm's MinimumAddressesInServiceSubnet. */
const MIN_SERVICE_ADDRESSES = 10n;

/** The fields whose values an error never shows. */
const SECRET_FIELDS = new Set(['bootstrapToken', 'certificateKey', 'token', 'controlPlane.certificateKey']);

const TOKEN = matching(/^[a-z0-9]{6}\.[a-z0-9]{16}$/, '[a-z0-9]{6}.[a-z0-9]{16}');
const CERT_KEY = matching(/^[0-9a-f]{64}$/, '64 lowercase hex digits');
const PORT = integer(1, 65535, 'an integer port in 1-65535');
const NODE_NAME = checkedString('a lowercase RFC 1123 subdomain', isDnsSubdomain);
const FLAG_NAME = matching(/^[a-zA-Z0-9][-a-zA-Z0-9._]*$/, 'a flag name without leading dashes');
const ARG = strictObject({ name: FLAG_NAME, value: v.string('expected a string') }, 'a {name, value} flag');

const NOT_ADVERTISABLE = {
  4: ['0.0.0.0/32', '169.254.0.0/16', '224.0.0.0/4', '255.255.255.255/32'].map(parseCidr),
  6: ['::/128', 'fe80::/10', 'ff00::/8'].map(parseCidr),
};

/**
 * An address kubeadm will advertise (or kubelet register), checked as kubeadm's VerifyAPIServerBindAddress does:
 * global unicast (Go's net.IP.IsGlobalUnicast: not unspecified, link-local, multicast or the IPv4 broadcast
 * address) or loopback, which kubeadm translates to the host's own address.
 */
function isAdvertisable(address: string): boolean {
  const ip = parseIp(address);
  if (!ip) return false;
  // an IPv4-mapped IPv6 address is judged as the IPv4 address it maps
  const v4 =
    ip.family === 6 && ip.value >> 32n === 0xffffn
      ? { family: 4 as const, value: ip.value & 0xffffffffn }
      : ip;
  const host: Cidr = { family: v4.family, base: v4.value, prefix: v4.family === 4 ? 32 : 128 };
  return !NOT_ADVERTISABLE[v4.family].some((c) => cidrsOverlap(c, host));
}

const ADVERTISE_ADDRESS = v.pipe(
  checkedString('an IPv4 or IPv6 address', isIp),
  v.check(
    isAdvertisable,
    'expected a global unicast address (not unspecified, link-local, multicast or broadcast)',
  ),
);

/** Why `value` is no service (or pod) range kubeadm accepts, or undefined when it is one. */
function cidrListProblem(value: string, service: boolean): string | undefined {
  const parts = value.split(',');
  if (parts.length > 2) return 'expected one CIDR or an IPv4,IPv6 pair';
  const cidrs: Cidr[] = [];
  for (const p of parts) {
    const problem = cidrProblem(p);
    if (problem) return problem;
    const cidr = parseCidr(p);
    cidrs.push(cidr);
    const { family, prefix } = cidr;
    const bits = family === 4 ? 32 : 128;
    if (service) {
      // The API server refuses service ranges with more than 2^20 addresses; kubeadm wants at least 10.
      if (bits - prefix > 20) return `service range too large: prefix must be >= /${bits - 20}`;
      if (1n << BigInt(bits - prefix) < MIN_SERVICE_ADDRESSES)
        return `service range too small: at least ${MIN_SERVICE_ADDRESSES} addresses`;
    } else {
      // kubeadm's ValidatePodSubnetNodeMask: the controller manager cuts one node CIDR per node out of the range.
      const nodeMask = NODE_MASK[family];
      if (prefix > nodeMask)
        return `pod range /${prefix} is smaller than one node's /${nodeMask} (prefix must be <= /${nodeMask})`;
      if (nodeMask - prefix > MAX_NODE_MASK_DIFF)
        return `pod range /${prefix} holds more than 2^${MAX_NODE_MASK_DIFF} node ranges of /${nodeMask} (prefix must be >= /${nodeMask - MAX_NODE_MASK_DIFF})`;
    }
  }
  if (parts.length === 2 && cidrs[0]?.family === cidrs[1]?.family)
    return 'a dual-stack pair needs one IPv4 and one IPv6 CIDR';
  return undefined;
}

const cidrList = (what: string, service: boolean) =>
  checkedString(
    what,
    (s) => cidrListProblem(s, service) === undefined,
    (s) => cidrListProblem(s, service),
  );

const endpoint = (what: string, defaultPort?: number) =>
  checkedString(
    what,
    (s) => endpointProblem(s, defaultPort) === undefined,
    (s) => endpointProblem(s, defaultPort),
  );

const cidrsOf = (value: string) => value.split(',').map(parseCidr);

const initSchema = v.pipe(
  strictObject({
    nodeName: NODE_NAME,
    advertiseAddress: ADVERTISE_ADDRESS,
    bindPort: PORT,
    clusterName: checkedString('a lowercase RFC 1123 name', isDnsSubdomain),
    kubernetesVersion: matching(/^v\d+\.\d+\.\d+$/, 'vX.Y.Z'),
    serviceCidr: cidrList('a service CIDR, or an IPv4,IPv6 pair', true),
    // empty is absent: the init request's "no pod network"
    podCidr: v.optional(
      v.union(
        [v.literal(''), cidrList('a pod CIDR, or an IPv4,IPv6 pair', false)],
        'expected a pod CIDR, or an IPv4,IPv6 pair',
      ),
    ),
    apiServerCertSans: v.array(
      checkedString('an IP address or a DNS name (optionally *.wildcard)', isSan),
      'expected a list of IP addresses and DNS names',
    ),
    // the port may be left out (kubeadm then uses the bind port)
    controlPlaneEndpoint: endpoint('host or host:port', DEFAULT_PORTS.apiServer),
    bootstrapToken: v.optional(TOKEN),
    bootstrapTokenTtl: v.optional(
      matching(/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/, 'a duration such as 1h0m0s'),
    ),
    imageRepository: v.optional(
      matching(
        /^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?(\/[a-z0-9]([-a-z0-9._]*[a-z0-9])?)*$/,
        'a registry/path such as localhost/sextant',
      ),
    ),
    certificateKey: v.optional(CERT_KEY),
    kubeletExtraArgs: v.optional(v.array(ARG, 'expected a list of {name, value} flags')),
    tuning: v.optional(kubeadmTuningSchema),
  }),
  v.forward(
    v.partialCheck(
      [['serviceCidr'], ['podCidr']],
      ({ serviceCidr, podCidr }) =>
        !podCidr || !cidrsOf(podCidr).some((p) => cidrsOf(serviceCidr).some((s) => cidrsOverlap(s, p))),
      (issue) => {
        const { serviceCidr, podCidr } = issue.input as { serviceCidr: string; podCidr: string };
        return `${JSON.stringify(podCidr)} overlaps serviceCidr ${serviceCidr}: the ranges must be apart`;
      },
    ),
    ['podCidr'],
  ),
);

/** A flag of a join's kubelet; node-ip is the join's own. */
const JOIN_ARG = strictObject(
  {
    name: v.pipe(
      FLAG_NAME,
      v.check((n) => n !== 'node-ip', 'expected a flag other than node-ip, which is set through nodeIp'),
    ),
    value: v.string('expected a string'),
  },
  'a {name, value} flag',
);

const joinSchema = strictObject({
  nodeName: NODE_NAME,
  nodeIp: ADVERTISE_ADDRESS,
  apiServerEndpoint: endpoint('host:port'),
  token: TOKEN,
  caCertHashes: v.pipe(
    v.array(matching(/^sha256:[0-9a-f]{64}$/, 'sha256:<64 hex digits>'), 'expected a list of CA pins'),
    // kubeadm would allow none with unsafeSkipCAVerification; we never do.
    v.minLength(1, 'expected at least one CA pin'),
  ),
  kubeletExtraArgs: v.optional(
    v.pipe(
      v.union(
        [v.array(v.unknown()), v.record(v.string(), v.unknown())],
        'expected a list of {name, value} flags or a name → value mapping',
      ),
      v.transform((args) =>
        Array.isArray(args) ? args : Object.entries(args).map(([name, value]) => ({ name, value })),
      ),
      v.array(JOIN_ARG),
    ),
    [],
  ),
  controlPlane: v.optional(
    strictObject({
      advertiseAddress: ADVERTISE_ADDRESS,
      bindPort: PORT,
      certificateKey: v.optional(CERT_KEY),
    }),
  ),
  tuning: v.optional(kubeadmTuningSchema),
});

/** A checked init input: what initConfiguration renders. */
export type InitConfig = v.InferOutput<typeof initSchema>;
/** A checked join input, its kubelet flags as a list. */
export type JoinConfig = v.InferOutput<typeof joinSchema>;

function check<S extends v.GenericSchema>(schema: S, input: unknown): v.InferOutput<S> {
  try {
    // Secrets: say what is wrong, never echo the value.
    return parseWith(schema, input, { redact: (path) => SECRET_FIELDS.has(path) });
  } catch (err) {
    if (err instanceof SchemaError) throw new KubeadmConfigError(err.keyPath, err.detail);
    throw err;
  }
}

/** Throws KubeadmConfigError naming the first bad field of `input`. */
export function checkInitConfigInput(input: InitConfigInput): InitConfig {
  return check(initSchema, input);
}

/** Throws KubeadmConfigError naming the first bad field of `input`. */
export function checkJoinConfigInput(input: JoinConfigInput): JoinConfig {
  return check(joinSchema, input);
}
