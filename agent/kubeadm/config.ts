import { stringify } from 'yaml';
import {
  cidrProblem,
  endpointProblem,
  isDnsSubdomain,
  isIp,
  isPort,
  isSan,
  parseCidr,
} from '../../common/net.js';

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
  /** Secret. A token that joining nodes may use; kubeadm generates one if absent. */
  bootstrapToken?: string;
  /** How long bootstrapToken lives, as a Go duration. Default 1h. */
  bootstrapTokenTtl?: string;
  /** Secret. Encrypts the control-plane certificates uploaded for control-plane joins. */
  certificateKey?: string;
  kubeletExtraArgs?: KubeadmArg[];
}

export interface JoinConfigInput {
  nodeName: string;
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

/** Multi-document YAML: InitConfiguration, ClusterConfiguration, KubeletConfiguration. */
export function initConfiguration(input: InitConfigInput): string {
  validateInit(input);
  const kubeletExtraArgs = [
    { name: 'node-ip', value: input.advertiseAddress },
    ...(input.kubeletExtraArgs ?? []),
  ];

  const init: Record<string, unknown> = {
    apiVersion: KUBEADM_API_VERSION,
    kind: 'InitConfiguration',
    nodeRegistration: { name: input.nodeName, kubeletExtraArgs },
    localAPIEndpoint: { advertiseAddress: input.advertiseAddress, bindPort: input.bindPort },
  };
  if (input.bootstrapToken !== undefined) {
    init.bootstrapTokens = [
      {
        token: input.bootstrapToken,
        ttl: input.bootstrapTokenTtl ?? '1h0m0s',
        usages: ['signing', 'authentication'],
        groups: ['system:bootstrappers:kubeadm:default-node-token'],
      },
    ];
  }
  if (input.certificateKey !== undefined) init.certificateKey = input.certificateKey;

  const networking: Record<string, string> = { serviceSubnet: input.serviceCidr, dnsDomain: 'cluster.local' };
  if (input.podCidr) networking.podSubnet = input.podCidr;
  const cluster = {
    apiVersion: KUBEADM_API_VERSION,
    kind: 'ClusterConfiguration',
    clusterName: input.clusterName,
    kubernetesVersion: input.kubernetesVersion,
    controlPlaneEndpoint: input.controlPlaneEndpoint,
    networking,
    apiServer: { certSANs: [...input.apiServerCertSans] },
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
  return toYamlDocuments([init, cluster, kubelet]);
}

/** A JoinConfiguration with bootstrap-token discovery pinned to the CA, plus the control-plane part if asked. */
export function joinConfiguration(input: JoinConfigInput): string {
  validateJoin(input);
  const args = normalizeArgs(input.kubeletExtraArgs);
  const nodeRegistration: Record<string, unknown> = { name: input.nodeName };
  if (args.length > 0) nodeRegistration.kubeletExtraArgs = args;
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
    join.controlPlane = cp;
  }
  return toYamlDocuments([join]);
}

function toYamlDocuments(docs: object[]): string {
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n');
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
  validateAddress(c.advertiseAddress, 'advertiseAddress');
  if (!isPort(c.bindPort)) fail('bindPort', 'expected an integer port in 1-65535', c.bindPort);
  const clusterName = requireString(c.clusterName, 'clusterName');
  if (!isDnsSubdomain(clusterName)) fail('clusterName', 'expected a lowercase RFC 1123 name', clusterName);
  const version = requireString(c.kubernetesVersion, 'kubernetesVersion');
  if (!VERSION.test(version)) fail('kubernetesVersion', 'expected vX.Y.Z', version);
  validateCidrs(requireString(c.serviceCidr, 'serviceCidr'), 'serviceCidr', true);
  if (c.podCidr !== undefined && c.podCidr !== '') validateCidrs(c.podCidr, 'podCidr', false);
  if (!Array.isArray(c.apiServerCertSans)) fail('apiServerCertSans', 'expected a list');
  c.apiServerCertSans.forEach((s, i) => {
    if (typeof s !== 'string' || !isSan(s)) {
      fail(`apiServerCertSans[${i}]`, 'expected an IP address or a DNS name (optionally *.wildcard)', s);
    }
  });
  const cpe = requireString(c.controlPlaneEndpoint, 'controlPlaneEndpoint');
  // the port may be left out (kubeadm then uses the bind port)
  const cpeProblem = endpointProblem(cpe, 6443);
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
  validateArgs(normalizeArgs(c.kubeletExtraArgs), 'kubeletExtraArgs');
  if (c.controlPlane) {
    validateAddress(c.controlPlane.advertiseAddress, 'controlPlane.advertiseAddress');
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

function validateAddress(v: unknown, field: string): void {
  const addr = requireString(v, field);
  if (!isIp(addr)) fail(field, 'expected an IPv4 or IPv6 address', addr);
}

function validateCidrs(value: string, field: string, service: boolean): void {
  const parts = value.split(',');
  if (parts.length > 2) fail(field, 'expected one CIDR or an IPv4,IPv6 pair', value);
  const families = new Set<number>();
  for (const p of parts) {
    const problem = cidrProblem(p);
    if (problem) fail(field, problem, value);
    const { family, prefix } = parseCidr(p);
    families.add(family);
    // The API server refuses service ranges with more than 2^20 addresses.
    const bits = family === 4 ? 32 : 128;
    if (service && bits - prefix > 20)
      fail(field, `service range too large: prefix must be >= /${bits - 20}`, value);
  }
  if (parts.length === 2 && families.size !== 2)
    fail(field, 'a dual-stack pair needs one IPv4 and one IPv6 CIDR', value);
}

function validateArgs(args: KubeadmArg[], field: string): void {
  args.forEach((a, i) => {
    if (typeof a.name !== 'string' || !/^[a-zA-Z0-9][-a-zA-Z0-9._]*$/.test(a.name)) {
      fail(`${field}[${i}].name`, 'expected a flag name without leading dashes', a.name);
    }
    if (typeof a.value !== 'string') fail(`${field}[${i}].value`, 'expected a string');
  });
}
