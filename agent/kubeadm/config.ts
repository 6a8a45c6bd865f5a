import { randomInt } from 'node:crypto';
import { stringify } from 'yaml';
import { DEFAULT_PORTS } from '../../common/contracts/ports.js';
import {
  type Cidr,
  cidrProblem,
  cidrsOverlap,
  endpointProblem,
  isDnsSubdomain,
  isIp,
  isPort,
  isSan,
  parseCidr,
  parseIp,
} from '../../common/net.js';
import { DOWNLOAD_CERTS_PHASE } from './control-plane-certs.js';

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

export const KUBEADM_API_VERSION = 'kubeadm.k8s.io/v1beta4';
export const KUBELET_API_VERSION = 'kubelet.config.k8s.io/v1beta1';
export const KUBE_PROXY_API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1';

/** The node image's container runtime (Debian's containerd), named so kubeadm never has to guess between sockets. */
export const CRI_SOCKET = 'unix:///run/containerd/containerd.sock';
/**
 * Where kubeadm finds the control-plane, etcd, CoreDNS and pause images. No registry: the images come as components
 * (archives, checked by SHA-256) that the node image's kubeadm wrapper imports into containerd under these names;
 * the image's containerd config names the pause image the same way (sandbox_image).
 */
export const IMAGE_REPOSITORY = 'localhost/sextant';
/**
 * kubeadm's waits, sized for a control plane under QEMU's TCG (no KVM on these machines): a static kube-apiserver
 * measured 16 s to /readyz under TCG against 4 s natively, and a whole control plane starts its pods on two emulated
 * vCPUs at once; kubeadm's defaults (4 min for the control plane and the kubelet, 5 min for TLS bootstrap and
 * discovery) fail there. Roughly 3-4x the defaults; the agent's per-command timeout (driver.ts) stays above the sum
 * of what one command may wait.
 */
export const KUBEADM_TIMEOUTS = {
  controlPlaneComponentHealthCheck: '15m0s',
  kubeletHealthCheck: '10m0s',
  kubernetesAPICall: '3m0s',
  etcdAPICall: '5m0s',
  tlsBootstrap: '15m0s',
  discovery: '15m0s',
} as const;
/**
 * A control plane on two emulated vCPUs, sharing the host with its worker, answers slowly: the API server's etcd
 * health checks (2 s by default) then fail its /livez and /readyz, kubelet's liveness probe restarts it, and the
 * restart makes it slower still. Seen in the VM end to end on a loaded host ("[-]etcd failed" for minutes).
 */
export const TCG_API_SERVER_ARGS: readonly KubeadmArg[] = [
  { name: 'etcd-healthcheck-timeout', value: '30s' },
  { name: 'etcd-readycheck-timeout', value: '30s' },
];
/**
 * Leader election for the controller manager and the scheduler: the defaults (15 s lease, 10 s renew deadline)
 * make both lose their lease and restart whenever a TCG node stalls for seconds, as they did in the VM end to end.
 */
export const TCG_LEADER_ELECTION_ARGS: readonly KubeadmArg[] = [
  { name: 'leader-elect-lease-duration', value: '60s' },
  { name: 'leader-elect-renew-deadline', value: '45s' },
  { name: 'leader-elect-retry-period', value: '5s' },
];
/**
 * The bootstrap token init leaves behind when none is asked for: kubeadm would otherwise create one valid for 24 h.
 * Joins never use it (each join ticket carries its own short-lived token), so it only has to outlive init itself.
 */
export const INIT_TOKEN_TTL = '5m0s';
/** The controller manager's default per-node pod CIDR sizes (kubeadm sets no --node-cidr-mask-size here). */
const NODE_MASK = { 4: 24, 6: 64 } as const;
/** kubeadm's PodSubnetNodeMaskMaxDiff: more than 2^16 node CIDRs overflow the allocator's bitmap. */
const MAX_NODE_MASK_DIFF = 16;
/** kubeadm's MinimumAddressesInServiceSubnet. */
const MIN_SERVICE_ADDRESSES = 10n;

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
}

const VERSION = /^v\d+\.\d+\.\d+$/;
const TOKEN = /^[a-z0-9]{6}\.[a-z0-9]{16}$/;
const CERT_KEY = /^[0-9a-f]{64}$/;
const CA_HASH = /^sha256:[0-9a-f]{64}$/;
const GO_DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;

/** Multi-document YAML: InitConfiguration, ClusterConfiguration, KubeletConfiguration, KubeProxyConfiguration. */
export function initConfiguration(input: InitConfigInput): string {
  validateInit(input);
  const kubeletExtraArgs = [
    { name: 'node-ip', value: input.advertiseAddress },
    ...(input.kubeletExtraArgs ?? []),
  ];

  const init: Record<string, unknown> = {
    apiVersion: KUBEADM_API_VERSION,
    kind: 'InitConfiguration',
    nodeRegistration: { name: input.nodeName, criSocket: CRI_SOCKET, kubeletExtraArgs },
    localAPIEndpoint: { advertiseAddress: input.advertiseAddress, bindPort: input.bindPort },
    bootstrapTokens: [
      {
        token: input.bootstrapToken ?? randomToken(),
        ttl: input.bootstrapTokenTtl ?? (input.bootstrapToken === undefined ? INIT_TOKEN_TTL : '1h0m0s'),
        usages: ['signing', 'authentication'],
        groups: ['system:bootstrappers:kubeadm:default-node-token'],
      },
    ],
    timeouts: { ...KUBEADM_TIMEOUTS },
  };
  if (input.certificateKey !== undefined) init.certificateKey = input.certificateKey;

  const networking: Record<string, string> = { serviceSubnet: input.serviceCidr, dnsDomain: 'cluster.local' };
  if (input.podCidr) networking.podSubnet = input.podCidr;
  const cluster = {
    apiVersion: KUBEADM_API_VERSION,
    kind: 'ClusterConfiguration',
    clusterName: input.clusterName,
    kubernetesVersion: input.kubernetesVersion,
    controlPlaneEndpoint: input.controlPlaneEndpoint,
    imageRepository: input.imageRepository ?? IMAGE_REPOSITORY,
    networking,
    apiServer: { certSANs: [...input.apiServerCertSans], extraArgs: [...TCG_API_SERVER_ARGS] },
    controllerManager: { extraArgs: [...TCG_LEADER_ELECTION_ARGS] },
    scheduler: { extraArgs: [...TCG_LEADER_ELECTION_ARGS] },
  };

  // Hardened where kubeadm's defaults already point, spelled out so a changed default cannot loosen it.
  const kubelet = {
    apiVersion: KUBELET_API_VERSION,
    kind: 'KubeletConfiguration',
    cgroupDriver: 'systemd',
    readOnlyPort: 0,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true } },
    authorization: { mode: 'Webhook' },
  };
  // nftables (GA since 1.33): the kube-proxy image carries nft and its libraries only, not iptables' variants.
  const kubeProxy = { apiVersion: KUBE_PROXY_API_VERSION, kind: 'KubeProxyConfiguration', mode: 'nftables' };
  return toYamlDocuments([init, cluster, kubelet, kubeProxy]);
}

/** A JoinConfiguration with bootstrap-token discovery pinned to the CA, plus the control-plane part if asked. */
export function joinConfiguration(input: JoinConfigInput): string {
  validateJoin(input);
  const args = [{ name: 'node-ip', value: input.nodeIp }, ...normalizeArgs(input.kubeletExtraArgs)];
  const nodeRegistration = { name: input.nodeName, criSocket: CRI_SOCKET, kubeletExtraArgs: args };
  const join: Record<string, unknown> = {
    apiVersion: KUBEADM_API_VERSION,
    kind: 'JoinConfiguration',
    nodeRegistration,
    discovery: {
      bootstrapToken: {
        apiServerEndpoint: input.apiServerEndpoint,
        token: input.token,
        caCertHashes: [...input.caCertHashes],
      },
    },
    timeouts: { ...KUBEADM_TIMEOUTS },
  };
  if (input.controlPlane) {
    const cp: Record<string, unknown> = {
      localAPIEndpoint: {
        advertiseAddress: input.controlPlane.advertiseAddress,
        bindPort: input.controlPlane.bindPort,
      },
    };
    if (input.controlPlane.certificateKey !== undefined)
      cp.certificateKey = input.controlPlane.certificateKey;
    // The shared certificates were handed over (control-plane-certs.ts): nothing to download, said explicitly.
    else join.skipPhases = [DOWNLOAD_CERTS_PHASE];
    join.controlPlane = cp;
  }
  return toYamlDocuments([join]);
}

const TOKEN_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** A bootstrap token in kubeadm's format, from the CSPRNG. */
function randomToken(): string {
  const pick = (n: number) =>
    Array.from({ length: n }, () => TOKEN_ALPHABET[randomInt(TOKEN_ALPHABET.length)]).join('');
  return `${pick(6)}.${pick(16)}`;
}

function toYamlDocuments(docs: object[]): string {
  return docs.map((d) => stringify(d, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
}

function normalizeArgs(args: JoinConfigInput['kubeletExtraArgs']): KubeadmArg[] {
  if (!args) return [];
  if (Array.isArray(args)) return args.map((a) => ({ name: a.name, value: a.value }));
  return Object.entries(args).map(([name, value]) => ({ name, value }));
}

function fail(field: string, why: string, value?: unknown): never {
  const shown = value === undefined ? '' : ` (got ${JSON.stringify(value)})`;
  throw new KubeadmConfigError(field, `${why}${shown}`);
}

function requireString(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '') fail(field, 'required');
  return v;
}

function validateInit(c: InitConfigInput): void {
  validateNodeName(c.nodeName, 'nodeName');
  validateAdvertiseAddress(c.advertiseAddress, 'advertiseAddress');
  if (!isPort(c.bindPort)) fail('bindPort', 'expected an integer port in 1-65535', c.bindPort);
  const clusterName = requireString(c.clusterName, 'clusterName');
  if (!isDnsSubdomain(clusterName)) fail('clusterName', 'expected a lowercase RFC 1123 name', clusterName);
  const version = requireString(c.kubernetesVersion, 'kubernetesVersion');
  if (!VERSION.test(version)) fail('kubernetesVersion', 'expected vX.Y.Z', version);
  const services = validateCidrs(requireString(c.serviceCidr, 'serviceCidr'), 'serviceCidr', true);
  if (c.podCidr !== undefined && c.podCidr !== '') {
    const pods = validateCidrs(c.podCidr, 'podCidr', false);
    for (const p of pods) {
      if (services.some((s) => cidrsOverlap(s, p)))
        fail('podCidr', `overlaps serviceCidr ${c.serviceCidr}`, c.podCidr);
    }
  }
  if (
    c.imageRepository !== undefined &&
    !/^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?(\/[a-z0-9]([-a-z0-9._]*[a-z0-9])?)*$/.test(c.imageRepository)
  )
    fail('imageRepository', 'expected a registry/path such as localhost/sextant', c.imageRepository);
  if (!Array.isArray(c.apiServerCertSans)) fail('apiServerCertSans', 'expected a list');
  c.apiServerCertSans.forEach((s, i) => {
    if (typeof s !== 'string' || !isSan(s)) {
      fail(`apiServerCertSans[${i}]`, 'expected an IP address or a DNS name (optionally *.wildcard)', s);
    }
  });
  const cpe = requireString(c.controlPlaneEndpoint, 'controlPlaneEndpoint');
  // the port may be left out (kubeadm then uses the bind port)
  const cpeProblem = endpointProblem(cpe, DEFAULT_PORTS.apiServer);
  if (cpeProblem) fail('controlPlaneEndpoint', cpeProblem, cpe);
  // Secrets: say what is wrong, never echo the value.
  if (c.bootstrapToken !== undefined && !TOKEN.test(c.bootstrapToken)) {
    fail('bootstrapToken', 'expected [a-z0-9]{6}.[a-z0-9]{16}');
  }
  if (c.bootstrapTokenTtl !== undefined && !GO_DURATION.test(c.bootstrapTokenTtl)) {
    fail('bootstrapTokenTtl', 'expected a duration such as 1h0m0s', c.bootstrapTokenTtl);
  }
  if (c.certificateKey !== undefined && !CERT_KEY.test(c.certificateKey)) {
    fail('certificateKey', 'expected 64 lowercase hex digits');
  }
  validateArgs(c.kubeletExtraArgs ?? [], 'kubeletExtraArgs');
}

function validateJoin(c: JoinConfigInput): void {
  validateNodeName(c.nodeName, 'nodeName');
  validateAdvertiseAddress(c.nodeIp, 'nodeIp');
  const ep = requireString(c.apiServerEndpoint, 'apiServerEndpoint');
  const epProblem = endpointProblem(ep);
  if (epProblem) fail('apiServerEndpoint', epProblem, ep);
  if (typeof c.token !== 'string' || !TOKEN.test(c.token)) fail('token', 'expected [a-z0-9]{6}.[a-z0-9]{16}');
  if (!Array.isArray(c.caCertHashes) || c.caCertHashes.length === 0) {
    // kubeadm would allow this with unsafeSkipCAVerification; we never do.
    fail('caCertHashes', 'at least one CA pin is required');
  }
  c.caCertHashes.forEach((h, i) => {
    if (typeof h !== 'string' || !CA_HASH.test(h))
      fail(`caCertHashes[${i}]`, 'expected sha256:<64 hex digits>', h);
  });
  const extra = normalizeArgs(c.kubeletExtraArgs);
  validateArgs(extra, 'kubeletExtraArgs');
  const nodeIpArg = extra.findIndex((a) => a.name === 'node-ip');
  if (nodeIpArg >= 0) fail(`kubeletExtraArgs[${nodeIpArg}].name`, 'node-ip is set through nodeIp');
  if (c.controlPlane) {
    validateAdvertiseAddress(c.controlPlane.advertiseAddress, 'controlPlane.advertiseAddress');
    if (!isPort(c.controlPlane.bindPort)) {
      fail('controlPlane.bindPort', 'expected an integer port in 1-65535', c.controlPlane.bindPort);
    }
    if (c.controlPlane.certificateKey !== undefined && !CERT_KEY.test(c.controlPlane.certificateKey)) {
      fail('controlPlane.certificateKey', 'expected 64 lowercase hex digits');
    }
  }
}

function validateNodeName(v: unknown, field: string): void {
  const name = requireString(v, field);
  if (!isDnsSubdomain(name)) fail(field, 'expected a lowercase RFC 1123 subdomain', name);
}

/**
 * An address kubeadm will advertise (or kubelet register), checked as kubeadm's VerifyAPIServerBindAddress does:
 * global unicast (Go's net.IP.IsGlobalUnicast: not unspecified, link-local, multicast or the IPv4 broadcast
 * address) or loopback, which kubeadm translates to the host's own address.
 */
function validateAdvertiseAddress(v: unknown, field: string): void {
  const addr = requireString(v, field);
  if (!isIp(addr)) fail(field, 'expected an IPv4 or IPv6 address', addr);
  if (!isAdvertisable(addr)) {
    fail(
      field,
      'expected a global unicast address (not unspecified, link-local, multicast or broadcast)',
      addr,
    );
  }
}

const NOT_ADVERTISABLE = {
  4: ['0.0.0.0/32', '169.254.0.0/16', '224.0.0.0/4', '255.255.255.255/32'].map(parseCidr),
  6: ['::/128', 'fe80::/10', 'ff00::/8'].map(parseCidr),
};

function isAdvertisable(address: string): boolean {
  const ip = parseIp(address);
  if (!ip) return false;
  // an IPv4-mapped IPv6 address is judged as the IPv4 address it maps
  const v =
    ip.family === 6 && ip.value >> 32n === 0xffffn
      ? { family: 4 as const, value: ip.value & 0xffffffffn }
      : ip;
  const host: Cidr = { family: v.family, base: v.value, prefix: v.family === 4 ? 32 : 128 };
  return !NOT_ADVERTISABLE[v.family].some((c) => cidrsOverlap(c, host));
}

function validateCidrs(value: string, field: string, service: boolean): Cidr[] {
  const parts = value.split(',');
  if (parts.length > 2) fail(field, 'expected one CIDR or an IPv4,IPv6 pair', value);
  const cidrs: Cidr[] = [];
  for (const p of parts) {
    const problem = cidrProblem(p);
    if (problem) fail(field, problem, value);
    const cidr = parseCidr(p);
    cidrs.push(cidr);
    const { family, prefix } = cidr;
    const bits = family === 4 ? 32 : 128;
    if (service) {
      // The API server refuses service ranges with more than 2^20 addresses; kubeadm wants at least 10.
      if (bits - prefix > 20) fail(field, `service range too large: prefix must be >= /${bits - 20}`, value);
      if (1n << BigInt(bits - prefix) < MIN_SERVICE_ADDRESSES)
        fail(field, `service range too small: at least ${MIN_SERVICE_ADDRESSES} addresses`, value);
    } else {
      // kubeadm's ValidatePodSubnetNodeMask: the controller manager cuts one node CIDR per node out of the range.
      const nodeMask = NODE_MASK[family];
      if (prefix > nodeMask)
        fail(
          field,
          `pod range /${prefix} is smaller than one node's /${nodeMask} (prefix must be <= /${nodeMask})`,
          value,
        );
      if (nodeMask - prefix > MAX_NODE_MASK_DIFF)
        fail(
          field,
          `pod range /${prefix} holds more than 2^${MAX_NODE_MASK_DIFF} node ranges of /${nodeMask} (prefix must be >= /${nodeMask - MAX_NODE_MASK_DIFF})`,
          value,
        );
    }
  }
  if (parts.length === 2 && cidrs[0]?.family === cidrs[1]?.family)
    fail(field, 'a dual-stack pair needs one IPv4 and one IPv6 CIDR', value);
  return cidrs;
}

function validateArgs(args: KubeadmArg[], field: string): void {
  args.forEach((a, i) => {
    if (typeof a.name !== 'string' || !/^[a-zA-Z0-9][-a-zA-Z0-9._]*$/.test(a.name)) {
      fail(`${field}[${i}].name`, 'expected a flag name without leading dashes', a.name);
    }
    if (typeof a.value !== 'string') fail(`${field}[${i}].value`, 'expected a string');
  });
}
