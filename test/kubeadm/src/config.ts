import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { parseAllDocuments } from 'yaml';
import { isDnsSubdomain, isWildcardDns, parseCidr, splitHostPort, validPort } from './net.js';
import { KubeadmError, warn } from './phases.js';
import {
  any,
  bool,
  DecodeError,
  decode,
  duration,
  int32,
  list,
  map,
  obj,
  type Schema,
  str,
} from './schema.js';
import { TOKEN_RE } from './tokens.js';
import { standinVersion } from './version.js';

export const KUBEADM_GV = 'kubeadm.k8s.io/v1beta4';
export const KUBELET_GV = 'kubelet.config.k8s.io/v1beta1';
export const KUBEPROXY_GV = 'kubeproxy.config.k8s.io/v1alpha1';

// ---- v1beta4 schema (cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go) ----
const Arg = obj('Arg', { name: str, value: str });
const EnvVar = obj('EnvVar', { name: str, value: str, valueFrom: any });
const HostPathMount = obj('HostPathMount', {
  name: str,
  hostPath: str,
  mountPath: str,
  readOnly: bool,
  pathType: str,
});
const componentFields = { extraArgs: list(Arg), extraVolumes: list(HostPathMount), extraEnvs: list(EnvVar) };
const ControlPlaneComponent = obj('ControlPlaneComponent', componentFields);
const APIServer = obj('APIServer', { ...componentFields, certSANs: list(str) });
const imageMeta = { imageRepository: str, imageTag: str };
const APIEndpoint = obj('APIEndpoint', { advertiseAddress: str, bindPort: int32 });
const Taint = obj('Taint', { key: str, value: str, effect: str, timeAdded: str });
const NodeRegistrationOptions = obj('NodeRegistrationOptions', {
  name: str,
  criSocket: str,
  taints: list(Taint),
  kubeletExtraArgs: list(Arg),
  ignorePreflightErrors: list(str),
  imagePullPolicy: str,
  imagePullSerial: bool,
});
const BootstrapToken = obj('BootstrapToken', {
  token: str,
  description: str,
  ttl: duration,
  expires: str,
  usages: list(str),
  groups: list(str),
});
const Patches = obj('Patches', { directory: str });
const Timeouts = obj('Timeouts', {
  controlPlaneComponentHealthCheck: duration,
  kubeletHealthCheck: duration,
  kubernetesAPICall: duration,
  etcdAPICall: duration,
  tlsBootstrap: duration,
  discovery: duration,
  upgradeManifests: duration,
});
const typeMeta = { apiVersion: str, kind: str };

const schemas: Record<string, Schema> = {
  InitConfiguration: obj('InitConfiguration', {
    ...typeMeta,
    bootstrapTokens: list(BootstrapToken),
    dryRun: bool,
    nodeRegistration: NodeRegistrationOptions,
    localAPIEndpoint: APIEndpoint,
    certificateKey: str,
    skipPhases: list(str),
    patches: Patches,
    timeouts: Timeouts,
  }),
  ClusterConfiguration: obj('ClusterConfiguration', {
    ...typeMeta,
    etcd: obj('Etcd', {
      local: obj('LocalEtcd', {
        ...imageMeta,
        dataDir: str,
        extraArgs: list(Arg),
        extraEnvs: list(EnvVar),
        serverCertSANs: list(str),
        peerCertSANs: list(str),
      }),
      external: obj('ExternalEtcd', { endpoints: list(str), caFile: str, certFile: str, keyFile: str }),
    }),
    networking: obj('Networking', { serviceSubnet: str, podSubnet: str, dnsDomain: str }),
    kubernetesVersion: str,
    controlPlaneEndpoint: str,
    apiServer: APIServer,
    controllerManager: ControlPlaneComponent,
    scheduler: ControlPlaneComponent,
    dns: obj('DNS', { ...imageMeta, disabled: bool }),
    proxy: obj('Proxy', { disabled: bool }),
    certificatesDir: str,
    imageRepository: str,
    featureGates: map(bool),
    clusterName: str,
    encryptionAlgorithm: str,
    certificateValidityPeriod: duration,
    caCertificateValidityPeriod: duration,
  }),
  JoinConfiguration: obj('JoinConfiguration', {
    ...typeMeta,
    dryRun: bool,
    nodeRegistration: NodeRegistrationOptions,
    caCertPath: str,
    discovery: obj('Discovery', {
      bootstrapToken: obj('BootstrapTokenDiscovery', {
        token: str,
        apiServerEndpoint: str,
        caCertHashes: list(str),
        unsafeSkipCAVerification: bool,
      }),
      file: obj('FileDiscovery', { kubeConfigPath: str }),
      tlsBootstrapToken: str,
    }),
    controlPlane: obj('JoinControlPlane', { localAPIEndpoint: APIEndpoint, certificateKey: str }),
    skipPhases: list(str),
    patches: Patches,
    timeouts: Timeouts,
  }),
  ResetConfiguration: obj('ResetConfiguration', {
    ...typeMeta,
    cleanupTmpDir: bool,
    certificatesDir: str,
    criSocket: str,
    dryRun: bool,
    force: bool,
    ignorePreflightErrors: list(str),
    skipPhases: list(str),
    unmountFlags: list(str),
    timeouts: Timeouts,
  }),
};

// ---- v1beta3 schema (cmd/kubeadm/app/apis/kubeadm/v1beta3/types.go): deprecated, still read by 1.3x ----
// What differs from v1beta4: extraArgs are maps, no timeouts (apiServer.timeoutForControlPlane and
// discovery.timeout instead), no dryRun, encryptionAlgorithm, validity periods, extraEnvs, dns.disabled,
// proxy, imagePullSerial, ResetConfiguration.
const ArgMap = map(str);
const v1beta3Component = obj('ControlPlaneComponent', {
  extraArgs: ArgMap,
  extraVolumes: list(HostPathMount),
});
const v1beta3NodeReg = obj('NodeRegistrationOptions', {
  name: str,
  criSocket: str,
  taints: list(Taint),
  kubeletExtraArgs: ArgMap,
  ignorePreflightErrors: list(str),
  imagePullPolicy: str,
});
const v1beta3Schemas: Record<string, Schema> = {
  InitConfiguration: obj('InitConfiguration', {
    ...typeMeta,
    bootstrapTokens: list(BootstrapToken),
    nodeRegistration: v1beta3NodeReg,
    localAPIEndpoint: APIEndpoint,
    certificateKey: str,
    skipPhases: list(str),
    patches: Patches,
  }),
  ClusterConfiguration: obj('ClusterConfiguration', {
    ...typeMeta,
    etcd: obj('Etcd', {
      local: obj('LocalEtcd', {
        ...imageMeta,
        dataDir: str,
        extraArgs: ArgMap,
        serverCertSANs: list(str),
        peerCertSANs: list(str),
      }),
      external: obj('ExternalEtcd', { endpoints: list(str), caFile: str, certFile: str, keyFile: str }),
    }),
    networking: obj('Networking', { serviceSubnet: str, podSubnet: str, dnsDomain: str }),
    kubernetesVersion: str,
    controlPlaneEndpoint: str,
    apiServer: obj('APIServer', {
      extraArgs: ArgMap,
      extraVolumes: list(HostPathMount),
      certSANs: list(str),
      timeoutForControlPlane: duration,
    }),
    controllerManager: v1beta3Component,
    scheduler: v1beta3Component,
    dns: obj('DNS', imageMeta),
    certificatesDir: str,
    imageRepository: str,
    featureGates: map(bool),
    clusterName: str,
  }),
  JoinConfiguration: obj('JoinConfiguration', {
    ...typeMeta,
    nodeRegistration: v1beta3NodeReg,
    caCertPath: str,
    discovery: obj('Discovery', {
      bootstrapToken: obj('BootstrapTokenDiscovery', {
        token: str,
        apiServerEndpoint: str,
        caCertHashes: list(str),
        unsafeSkipCAVerification: bool,
      }),
      file: obj('FileDiscovery', { kubeConfigPath: str }),
      tlsBootstrapToken: str,
      timeout: duration,
    }),
    controlPlane: obj('JoinControlPlane', { localAPIEndpoint: APIEndpoint, certificateKey: str }),
    skipPhases: list(str),
    patches: Patches,
  }),
};

/** v1beta3 extraArgs map → v1beta4 list, sorted by name as kubeadm's convertToArgs does. */
function argList(m: unknown): ArgT[] | undefined {
  if (!m) return undefined;
  return Object.keys(m as Record<string, string>)
    .sort()
    .map((name) => ({ name, value: (m as Record<string, string>)[name] }));
}

/**
 * A decoded v1beta3 document in v1beta4 shape (v1beta3/conversion.go). Returns the document and, for a
 * ClusterConfiguration, apiServer.timeoutForControlPlane (which v1beta4 moved to InitConfiguration.timeouts).
 */
function fromV1beta3(
  kind: string,
  d: Record<string, unknown>,
): { doc: Record<string, unknown>; cpTimeout?: number } {
  // biome-ignore lint/suspicious/noExplicitAny: reshaping a decoded YAML document field by field
  const doc = structuredClone(d) as Record<string, any>;
  doc.apiVersion = KUBEADM_GV;
  if (doc.nodeRegistration?.kubeletExtraArgs)
    doc.nodeRegistration.kubeletExtraArgs = argList(doc.nodeRegistration.kubeletExtraArgs);
  if (kind === 'ClusterConfiguration') {
    for (const c of [doc.apiServer, doc.controllerManager, doc.scheduler, doc.etcd?.local]) {
      if (c?.extraArgs) c.extraArgs = argList(c.extraArgs);
    }
    const cpTimeout = doc.apiServer?.timeoutForControlPlane as number | undefined;
    if (doc.apiServer) delete doc.apiServer.timeoutForControlPlane;
    // v1beta3 has no encryptionAlgorithm; its conversion fixes RSA-2048.
    doc.encryptionAlgorithm = 'RSA-2048';
    return { doc, cpTimeout: cpTimeout || undefined };
  }
  if (kind === 'JoinConfiguration' && doc.discovery && 'timeout' in doc.discovery) {
    doc.timeouts = { discovery: doc.discovery.timeout };
    delete doc.discovery.timeout;
  }
  return { doc };
}

// ---- decoded shapes (only what the stand-in reads) ----
export interface ArgT {
  name?: string;
  value?: string;
}
export interface EndpointT {
  advertiseAddress?: string;
  bindPort?: number;
}
export interface NodeRegT {
  name?: string;
  criSocket?: string;
  taints?: { key?: string; value?: string; effect?: string }[];
  kubeletExtraArgs?: ArgT[];
  ignorePreflightErrors?: string[];
  imagePullPolicy?: string;
}
export interface TokenSpecT {
  token?: string;
  description?: string;
  ttl?: number;
  expires?: string;
  usages?: string[];
  groups?: string[];
}
export interface TimeoutsT {
  controlPlaneComponentHealthCheck?: number;
  kubeletHealthCheck?: number;
  kubernetesAPICall?: number;
  etcdAPICall?: number;
  tlsBootstrap?: number;
  discovery?: number;
}
export interface InitCfg {
  bootstrapTokens?: TokenSpecT[];
  dryRun?: boolean;
  nodeRegistration: NodeRegT;
  localAPIEndpoint: EndpointT;
  certificateKey?: string;
  skipPhases?: string[];
  timeouts: Required<TimeoutsT>;
}
export interface ClusterCfg {
  etcd?: {
    local?: { dataDir?: string; serverCertSANs?: string[]; peerCertSANs?: string[] };
    external?: unknown;
  };
  networking: { serviceSubnet: string; podSubnet?: string; dnsDomain: string };
  kubernetesVersion: string;
  controlPlaneEndpoint?: string;
  apiServer: { certSANs?: string[]; extraArgs?: ArgT[] };
  controllerManager?: { extraArgs?: ArgT[] };
  scheduler?: { extraArgs?: ArgT[] };
  certificatesDir: string;
  imageRepository: string;
  clusterName: string;
  encryptionAlgorithm: string;
  certificateValidityPeriod: number;
  caCertificateValidityPeriod: number;
  featureGates?: Record<string, boolean>;
}
export interface JoinCfg {
  dryRun?: boolean;
  nodeRegistration: NodeRegT;
  caCertPath: string;
  discovery: {
    bootstrapToken?: {
      token?: string;
      apiServerEndpoint?: string;
      caCertHashes?: string[];
      unsafeSkipCAVerification?: boolean;
    };
    file?: { kubeConfigPath?: string };
    tlsBootstrapToken?: string;
  };
  controlPlane?: { localAPIEndpoint: EndpointT; certificateKey?: string };
  skipPhases?: string[];
  timeouts: Required<TimeoutsT>;
}

export interface LoadedConfig {
  init?: InitCfg;
  cluster?: ClusterCfg;
  join?: JoinCfg;
  kubelet?: Record<string, unknown>;
  kubeProxy?: Record<string, unknown>;
}

export const KUBEADM_V1BETA3 = 'kubeadm.k8s.io/v1beta3';

const KNOWN_KINDS: Record<string, string[]> = {
  [KUBEADM_GV]: Object.keys(schemas),
  [KUBEADM_V1BETA3]: Object.keys(v1beta3Schemas),
  [KUBELET_GV]: ['KubeletConfiguration'],
  [KUBEPROXY_GV]: ['KubeProxyConfiguration'],
};

/** Removed API versions and the kubeadm release that last read each (util/config/common.go). */
const OLD_KUBEADM: Record<string, string> = {
  'kubeadm.k8s.io/v1alpha1': 'v1.11',
  'kubeadm.k8s.io/v1alpha2': 'v1.12',
  'kubeadm.k8s.io/v1alpha3': 'v1.14',
  'kubeadm.k8s.io/v1beta1': 'v1.15',
  'kubeadm.k8s.io/v1beta2': 'v1.22',
};
const DEPRECATED_KUBEADM = new Set([KUBEADM_V1BETA3]);

/** How Go's %#v prints a schema.GroupVersionKind, as kubeadm's warnings show it. */
function gvkString(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  return `schema.GroupVersionKind{Group:"${group}", Version:"${version}", Kind:"${kind}"}`;
}

/**
 * Parses a multi-document kubeadm config file as `kubeadm --config` does: a removed API version or a
 * wrong type is an error; a deprecated API version (v1beta3) and unknown fields are warnings, and the
 * unknown fields are dropped (documentMapTo{Init,Join}Configuration with strictErrors=false).
 */
export function loadConfigFile(path: string, forCommand: 'init' | 'join'): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new KubeadmError(`unable to read config from "${path}" : ${(e as Error).message}`);
  }
  return parseConfig(text, forCommand, path);
}

export function parseConfig(text: string, forCommand: 'init' | 'join', source = 'config'): LoadedConfig {
  const docs = parseAllDocuments(text, { uniqueKeys: true, version: '1.2' });
  const seen = new Map<string, unknown>();
  const groupVersionOf = new Map<string, string>();
  let v1beta3ControlPlaneTimeout: number | undefined;
  docs.forEach((doc, i) => {
    if (doc.errors.length > 0) {
      throw new KubeadmError(
        `failed to load configuration from "${source}": error converting YAML to JSON: yaml: document ${i}: ${doc.errors[0]!.message}`,
      );
    }
    const v = doc.toJS();
    if (v === null || v === undefined) return; // empty document between separators
    if (typeof v !== 'object' || Array.isArray(v)) {
      throw new KubeadmError(
        `failed to load configuration from "${source}": document ${i}: couldn't get version/kind; json parse error: json: cannot unmarshal ${Array.isArray(v) ? 'array' : typeof v} into Go value of type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }`,
      );
    }
    const apiVersion = (v as Record<string, unknown>).apiVersion;
    const kind = (v as Record<string, unknown>).kind;
    if (typeof kind !== 'string' || kind === '') {
      throw new KubeadmError(
        `failed to load configuration from "${source}": document ${i}: Object 'Kind' is missing`,
      );
    }
    if (typeof apiVersion !== 'string' || apiVersion === '') {
      throw new KubeadmError(
        `failed to load configuration from "${source}": document ${i} (kind ${kind}): Object 'apiVersion' is missing`,
      );
    }
    const lastReader = OLD_KUBEADM[apiVersion];
    if (lastReader) {
      throw new KubeadmError(
        `your configuration file uses an old API spec: "${apiVersion}" (kind: "${kind}"). Please use kubeadm ${lastReader} instead and run 'kubeadm config migrate --old-config old-config-file --new-config new-config-file', which will write the new, similar spec using a newer API version.`,
      );
    }
    const kinds = KNOWN_KINDS[apiVersion];
    if (!kinds?.includes(kind)) {
      throw new KubeadmError(
        `failed to load configuration from "${source}": no kind "${kind}" is registered for version "${apiVersion}" in scheme "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"`,
      );
    }
    if (seen.has(kind)) {
      throw new KubeadmError(
        `failed to load configuration from "${source}": invalid configuration: kind "${kind}" is specified twice in YAML file`,
      );
    }
    groupVersionOf.set(kind, apiVersion);
    if (apiVersion !== KUBEADM_GV && apiVersion !== KUBEADM_V1BETA3) {
      seen.set(kind, v);
      return;
    }
    // A join reads only its JoinConfiguration; the other documents are ignored (with a warning below).
    if (forCommand === 'join' && kind !== 'JoinConfiguration') {
      seen.set(kind, v);
      return;
    }
    if (DEPRECATED_KUBEADM.has(apiVersion)) {
      warn(
        `your configuration file uses a deprecated API spec: "${apiVersion}" (kind: "${kind}"). Please use 'kubeadm config migrate --old-config old-config-file --new-config new-config-file', which will write the new, similar spec using a newer API version.`,
      );
    }
    const schema = apiVersion === KUBEADM_V1BETA3 ? v1beta3Schemas[kind]! : schemas[kind]!;
    let decoded: { value: unknown; unknownFields: string[] };
    try {
      decoded = decode(kind, schema, v, apiVersion.split('/')[1]!);
    } catch (e) {
      if (e instanceof DecodeError) {
        throw new KubeadmError(
          `failed to load configuration from "${source}": ${apiVersion}, Kind=${kind}: ${e.message}`,
        );
      }
      throw e;
    }
    if (decoded.unknownFields.length > 0) {
      warn(
        `error unmarshaling configuration ${gvkString(apiVersion, kind)}: strict decoding error: ${decoded.unknownFields.map((f) => `unknown field "${f}"`).join(', ')}`,
      );
    }
    if (apiVersion === KUBEADM_V1BETA3) {
      const converted = fromV1beta3(kind, decoded.value as Record<string, unknown>);
      if (converted.cpTimeout !== undefined) v1beta3ControlPlaneTimeout = converted.cpTimeout;
      seen.set(kind, converted.doc);
    } else {
      seen.set(kind, decoded.value);
    }
  });

  const out: LoadedConfig = {};
  const initDoc = seen.get('InitConfiguration') as Record<string, unknown> | undefined;
  const clusterDoc = seen.get('ClusterConfiguration') as Record<string, unknown> | undefined;
  const joinDoc = seen.get('JoinConfiguration') as Record<string, unknown> | undefined;
  out.kubelet = seen.get('KubeletConfiguration') as Record<string, unknown> | undefined;
  out.kubeProxy = seen.get('KubeProxyConfiguration') as Record<string, unknown> | undefined;

  if (forCommand === 'init') {
    if (!initDoc && !clusterDoc) {
      throw new KubeadmError(
        `failed to load configuration from "${source}": no InitConfiguration or ClusterConfiguration kind was found in the YAML file`,
      );
    }
    if (joinDoc)
      warn(
        `[config] WARNING: Ignored configuration document with GroupVersionKind ${groupVersionOf.get('JoinConfiguration')}, Kind=JoinConfiguration`,
      );
    out.init = defaultInit(initDoc ?? {});
    out.cluster = defaultCluster(clusterDoc ?? {});
    // v1beta3's apiServer.timeoutForControlPlane wins over the default, as kubeadm's conversion workaround does.
    if (v1beta3ControlPlaneTimeout !== undefined)
      out.init.timeouts.controlPlaneComponentHealthCheck = v1beta3ControlPlaneTimeout;
    const errs = [...validateInit(out.init), ...validateCluster(out.cluster)];
    if (errs.length > 0) throw new KubeadmError(aggregate(errs));
  } else {
    if (!joinDoc) {
      throw new KubeadmError(
        `failed to load configuration from "${source}": no JoinConfiguration kind was found in the YAML file`,
      );
    }
    for (const [k, gv] of groupVersionOf) {
      if (k !== 'JoinConfiguration')
        warn(`[config] WARNING: Ignored configuration document with GroupVersionKind ${gv}, Kind=${k}`);
    }
    out.join = defaultJoin(joinDoc);
    const errs = validateJoin(out.join);
    if (errs.length > 0) throw new KubeadmError(aggregate(errs));
  }
  return out;
}

function aggregate(errs: string[]): string {
  return errs.length === 1 ? errs[0]! : `[${errs.join(', ')}]`;
}

// ---- defaults (cmd/kubeadm/app/apis/kubeadm/v1beta4/defaults.go) ----
const DEFAULT_CRI = 'unix:///var/run/containerd/containerd.sock';

function defaultTimeouts(t: TimeoutsT | undefined): Required<TimeoutsT> {
  return {
    controlPlaneComponentHealthCheck: t?.controlPlaneComponentHealthCheck ?? 4 * 60_000,
    kubeletHealthCheck: t?.kubeletHealthCheck ?? 4 * 60_000,
    kubernetesAPICall: t?.kubernetesAPICall ?? 60_000,
    etcdAPICall: t?.etcdAPICall ?? 2 * 60_000,
    tlsBootstrap: t?.tlsBootstrap ?? 5 * 60_000,
    discovery: t?.discovery ?? 5 * 60_000,
  };
}

function defaultNodeReg(n: NodeRegT | undefined, controlPlane: boolean): NodeRegT {
  return {
    ...n,
    name: n?.name ?? hostname().toLowerCase(),
    criSocket: n?.criSocket ?? DEFAULT_CRI,
    imagePullPolicy: n?.imagePullPolicy ?? 'IfNotPresent',
    taints:
      n?.taints ??
      (controlPlane ? [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }] : []),
  };
}

/** kubeadm picks the address of the default-route interface; the first non-internal IPv4 is close enough here. */
function detectAddress(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

function defaultEndpoint(e: EndpointT | undefined): EndpointT {
  return { advertiseAddress: e?.advertiseAddress || detectAddress(), bindPort: e?.bindPort || 6443 };
}

export function defaultInit(d: Record<string, unknown>): InitCfg {
  const c = d as Partial<InitCfg> & { timeouts?: TimeoutsT };
  return {
    ...c,
    bootstrapTokens: (c.bootstrapTokens ?? [{}]).map((t) => ({
      ...t,
      token: t.token ?? generateTokenString(),
      ttl: t.ttl ?? (t.expires ? undefined : 24 * 3_600_000),
      usages: t.usages ?? ['signing', 'authentication'],
      groups: t.groups ?? ['system:bootstrappers:kubeadm:default-node-token'],
      description:
        t.description ??
        (c.bootstrapTokens ? undefined : "The default bootstrap token generated by 'kubeadm init'."),
    })),
    nodeRegistration: defaultNodeReg(c.nodeRegistration, true),
    localAPIEndpoint: defaultEndpoint(c.localAPIEndpoint),
    timeouts: defaultTimeouts(c.timeouts),
  };
}

export function defaultCluster(d: Record<string, unknown>): ClusterCfg {
  const c = d as Partial<ClusterCfg> & { networking?: Partial<ClusterCfg['networking']> };
  return {
    ...c,
    networking: {
      ...c.networking,
      serviceSubnet: c.networking?.serviceSubnet || '10.96.0.0/12',
      dnsDomain: c.networking?.dnsDomain || 'cluster.local',
    },
    kubernetesVersion: c.kubernetesVersion || standinVersion(),
    apiServer: c.apiServer ?? {},
    certificatesDir: c.certificatesDir || '/etc/kubernetes/pki',
    imageRepository: c.imageRepository || 'registry.k8s.io',
    clusterName: c.clusterName || 'kubernetes',
    encryptionAlgorithm: c.encryptionAlgorithm || 'RSA-2048',
    certificateValidityPeriod: c.certificateValidityPeriod ?? 8760 * 3_600_000,
    caCertificateValidityPeriod: c.caCertificateValidityPeriod ?? 87600 * 3_600_000,
    etcd: c.etcd ?? { local: { dataDir: '/var/lib/etcd' } },
  };
}

export function defaultJoin(d: Record<string, unknown>): JoinCfg {
  const c = d as unknown as JoinCfg & { timeouts?: TimeoutsT };
  const discovery = { ...c.discovery };
  if (discovery.bootstrapToken && !discovery.tlsBootstrapToken)
    discovery.tlsBootstrapToken = discovery.bootstrapToken.token;
  return {
    ...c,
    discovery,
    nodeRegistration: defaultNodeReg(c.nodeRegistration, !!c.controlPlane),
    caCertPath: c.caCertPath || '/etc/kubernetes/pki/ca.crt',
    controlPlane: c.controlPlane
      ? { ...c.controlPlane, localAPIEndpoint: defaultEndpoint(c.controlPlane.localAPIEndpoint) }
      : undefined,
    timeouts: defaultTimeouts(c.timeouts),
  };
}

export function generateTokenString(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const pick = (n: number) =>
    Array.from(randomBytes(n * 2))
      .filter((b) => b < 252)
      .slice(0, n)
      .map((b) => alphabet[b % 36])
      .join('');
  return `${pick(6)}.${pick(16)}`;
}

// ---- validation (cmd/kubeadm/app/apis/kubeadm/validation/validation.go) ----
const inv = (field: string, value: unknown, why: string) =>
  `${field}: Invalid value: ${typeof value === 'string' ? JSON.stringify(value) : String(value)}: ${why}`;
const REDACTED = '"<redacted>"';
const invSecret = (field: string, why: string) => `${field}: Invalid value: ${REDACTED}: ${why}`;

const VERSION_RE = /^v?(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;
const HASH_RE = /^sha256:[0-9a-f]{64}$/;
const KEY_RE = /^[0-9a-f]{64}$/;
const GROUP_RE = /^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$/;
const KNOWN_GATES = [
  'ControlPlaneKubeletLocalMode',
  'EtcdLearnerMode',
  'NodeLocalCRISocket',
  'PublicKeysECDSA',
  'RootlessControlPlane',
  'WaitForAllControlPlaneComponents',
];

function validateEndpoint(e: EndpointT, prefix: string, errs: string[]): void {
  if (!e.advertiseAddress || isIP(e.advertiseAddress) === 0) {
    errs.push(
      inv(
        `${prefix}.advertiseAddress`,
        e.advertiseAddress ?? '',
        `couldn't use "${e.advertiseAddress ?? ''}" as "apiserver-advertise-address", must be ipv4 or ipv6 address`,
      ),
    );
  }
  if (!validPort(e.bindPort)) errs.push(inv(`${prefix}.bindPort`, e.bindPort, 'port number is not valid'));
}

function validateNodeReg(n: NodeRegT, prefix: string, errs: string[]): void {
  if (!n.name || !isDnsSubdomain(n.name)) {
    errs.push(
      inv(
        `${prefix}.name`,
        n.name ?? '',
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
      ),
    );
  }
  if (!n.criSocket || !/^(unix|npipe):\/\//.test(n.criSocket)) {
    errs.push(
      inv(`${prefix}.criSocket`, n.criSocket ?? '', 'expected a URL with scheme unix:// or npipe://'),
    );
  }
  if (n.imagePullPolicy && !['Always', 'IfNotPresent', 'Never'].includes(n.imagePullPolicy)) {
    errs.push(
      `${prefix}.imagePullPolicy: Unsupported value: "${n.imagePullPolicy}": supported values: "Always", "IfNotPresent", "Never"`,
    );
  }
  n.taints?.forEach((t, i) => {
    if (!t.key) errs.push(`${prefix}.taints[${i}].key: Required value`);
    if (t.effect && !['NoSchedule', 'PreferNoSchedule', 'NoExecute'].includes(t.effect)) {
      errs.push(
        `${prefix}.taints[${i}].effect: Unsupported value: "${t.effect}": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"`,
      );
    }
  });
  validateArgs(n.kubeletExtraArgs, `${prefix}.kubeletExtraArgs`, errs);
}

function validateArgs(args: ArgT[] | undefined, prefix: string, errs: string[]): void {
  args?.forEach((a, i) => {
    if (!a.name) errs.push(`${prefix}[${i}].name: Required value: argument name must not be empty`);
  });
}

function validateSubnets(value: string, field: string, errs: string[], checkServiceSize: boolean): void {
  const parts = value.split(',');
  if (parts.length > 2) {
    errs.push(inv(field, value, 'expected a comma-separated list of at most two CIDRs (dual-stack)'));
    return;
  }
  const fams = new Set<number>();
  for (const p of parts) {
    const c = parseCidr(p);
    if (!c) {
      errs.push(inv(field, value, `couldn't parse subnet`));
      return;
    }
    fams.add(c.family);
    if (checkServiceSize) {
      const bits = c.family === 4 ? 32 : 128;
      if (bits - c.prefix > 20) {
        errs.push(
          inv(
            field,
            value,
            `specified service subnet is too large; for ${bits}-bit addresses, the mask must be >= ${bits - 20}`,
          ),
        );
      }
    }
  }
  if (parts.length === 2 && fams.size !== 2)
    errs.push(inv(field, value, 'expected one IPv4 and one IPv6 CIDR for dual-stack'));
}

function validateCertSANs(sans: string[] | undefined, field: string, errs: string[]): void {
  sans?.forEach((s, i) => {
    if (isIP(s) === 0 && !isDnsSubdomain(s) && !isWildcardDns(s)) {
      errs.push(
        inv(
          `${field}[${i}]`,
          s,
          'altname is not a valid IP address, DNS label or a DNS label with subdomain wildcards',
        ),
      );
    }
  });
}

function validateToken(t: TokenSpecT, i: number, errs: string[]): void {
  const f = `bootstrapTokens[${i}]`;
  if (!t.token || !TOKEN_RE.test(t.token))
    errs.push(invSecret(`${f}.token`, 'the bootstrap token is invalid'));
  if (t.ttl !== undefined && t.expires)
    errs.push(`${f}.expires: Invalid value: "${t.expires}": ttl and expires are mutually exclusive`);
  if (t.expires && Number.isNaN(Date.parse(t.expires)))
    errs.push(inv(`${f}.expires`, t.expires, 'expected an RFC3339 timestamp'));
  if (t.ttl !== undefined && t.ttl < 0) errs.push(inv(`${f}.ttl`, t.ttl, 'ttl must not be negative'));
  t.usages?.forEach((u, j) => {
    if (u !== 'signing' && u !== 'authentication') {
      errs.push(
        inv(
          `${f}.usages[${j}]`,
          u,
          'invalid bootstrap token usage string: supported usages are "authentication", "signing"',
        ),
      );
    }
  });
  t.groups?.forEach((g, j) => {
    if (!GROUP_RE.test(g))
      errs.push(
        inv(`${f}.groups[${j}]`, g, `bootstrap group "${g}" is invalid (must match ${GROUP_RE.source})`),
      );
  });
}

export function validateInit(c: InitCfg): string[] {
  const errs: string[] = [];
  for (const [i, t] of (c.bootstrapTokens ?? []).entries()) validateToken(t, i, errs);
  validateNodeReg(c.nodeRegistration, 'nodeRegistration', errs);
  validateEndpoint(c.localAPIEndpoint, 'localAPIEndpoint', errs);
  if (c.certificateKey && !KEY_RE.test(c.certificateKey)) {
    errs.push(
      invSecret(
        'certificateKey',
        'the certificate key must be a hex encoded string of 32 bytes (64 hex characters)',
      ),
    );
  }
  return errs;
}

export function validateVersionString(v: string): string | undefined {
  if (!VERSION_RE.test(v)) {
    return `version "${v}" doesn't match patterns for neither semantic version nor labels (stable, latest, ...)`;
  }
  return undefined;
}

export function validateCluster(c: ClusterCfg): string[] {
  const errs: string[] = [];
  const verr = validateVersionString(c.kubernetesVersion);
  if (verr) errs.push(inv('kubernetesVersion', c.kubernetesVersion, verr));
  validateSubnets(c.networking.serviceSubnet, 'networking.serviceSubnet', errs, true);
  if (c.networking.podSubnet) validateSubnets(c.networking.podSubnet, 'networking.podSubnet', errs, false);
  if (!isDnsSubdomain(c.networking.dnsDomain)) {
    errs.push(
      inv('networking.dnsDomain', c.networking.dnsDomain, 'a lowercase RFC 1123 subdomain is required'),
    );
  }
  if (c.controlPlaneEndpoint) {
    const { host, port, portText } = splitHostPort(c.controlPlaneEndpoint);
    if ((isIP(host) === 0 && !isDnsSubdomain(host)) || (portText !== undefined && !validPort(port))) {
      errs.push(
        inv(
          'controlPlaneEndpoint',
          c.controlPlaneEndpoint,
          'must be a valid IP address or RFC-1123 DNS subdomain, with an optional port in 1-65535',
        ),
      );
    }
  }
  validateCertSANs(c.apiServer.certSANs, 'apiServer.certSANs', errs);
  validateCertSANs(c.etcd?.local?.serverCertSANs, 'etcd.local.serverCertSANs', errs);
  validateCertSANs(c.etcd?.local?.peerCertSANs, 'etcd.local.peerCertSANs', errs);
  validateArgs(c.apiServer.extraArgs, 'apiServer.extraArgs', errs);
  validateArgs(c.controllerManager?.extraArgs, 'controllerManager.extraArgs', errs);
  validateArgs(c.scheduler?.extraArgs, 'scheduler.extraArgs', errs);
  if (c.etcd?.local && c.etcd.external) {
    errs.push('etcd: Invalid value: "": either .Etcd.Local or .Etcd.External is required, not both');
  }
  if (!c.certificatesDir.startsWith('/'))
    errs.push(inv('certificatesDir', c.certificatesDir, 'path is not absolute'));
  if (!['RSA-2048', 'RSA-3072', 'RSA-4096', 'ECDSA-P256'].includes(c.encryptionAlgorithm)) {
    errs.push(
      `encryptionAlgorithm: Unsupported value: "${c.encryptionAlgorithm}": supported values: "ECDSA-P256", "RSA-2048", "RSA-3072", "RSA-4096"`,
    );
  }
  for (const g of Object.keys(c.featureGates ?? {})) {
    if (!KNOWN_GATES.includes(g)) errs.push(inv('featureGates', g, `unrecognized feature-gate key: ${g}`));
  }
  if (c.certificateValidityPeriod <= 0)
    errs.push(inv('certificateValidityPeriod', c.certificateValidityPeriod, 'must be positive'));
  if (c.caCertificateValidityPeriod <= 0)
    errs.push(inv('caCertificateValidityPeriod', c.caCertificateValidityPeriod, 'must be positive'));
  return errs;
}

export function validateJoin(c: JoinCfg): string[] {
  const errs: string[] = [];
  validateNodeReg(c.nodeRegistration, 'nodeRegistration', errs);
  const d = c.discovery;
  if (!d.bootstrapToken && !d.file)
    errs.push('discovery: Invalid value: "": bootstrapToken or file must be set');
  if (d.bootstrapToken && d.file)
    errs.push('discovery: Invalid value: "": bootstrapToken and file cannot both be set');
  if (d.bootstrapToken) {
    const b = d.bootstrapToken;
    if (!b.token || !TOKEN_RE.test(b.token))
      errs.push(invSecret('discovery.bootstrapToken.token', 'the bootstrap token is invalid'));
    if (!b.apiServerEndpoint) {
      errs.push(
        'discovery.bootstrapToken.apiServerEndpoint: Required value: the API server endpoint is required for token discovery',
      );
    } else {
      const { host, port, portText } = splitHostPort(b.apiServerEndpoint);
      if (portText === undefined) {
        errs.push(
          inv(
            'discovery.bootstrapToken.apiServerEndpoint',
            b.apiServerEndpoint,
            `address ${b.apiServerEndpoint}: missing port in address`,
          ),
        );
      } else if (!validPort(port) || (isIP(host) === 0 && !isDnsSubdomain(host))) {
        errs.push(
          inv('discovery.bootstrapToken.apiServerEndpoint', b.apiServerEndpoint, 'must be a valid host:port'),
        );
      }
    }
    b.caCertHashes?.forEach((h, i) => {
      if (!HASH_RE.test(h)) {
        errs.push(
          inv(
            `discovery.bootstrapToken.caCertHashes[${i}]`,
            h,
            'invalid hash, expected "sha256:" followed by 64 lowercase hex characters',
          ),
        );
      }
    });
    if ((b.caCertHashes ?? []).length === 0 && !b.unsafeSkipCAVerification) {
      errs.push(
        'discovery.bootstrapToken.caCertHashes: Invalid value: []string(nil): using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue',
      );
    }
  }
  if (d.file && !d.file.kubeConfigPath) errs.push('discovery.file.kubeConfigPath: Required value');
  if (d.tlsBootstrapToken && !TOKEN_RE.test(d.tlsBootstrapToken)) {
    errs.push(invSecret('discovery.tlsBootstrapToken', 'the bootstrap token is invalid'));
  }
  if (!c.caCertPath.startsWith('/')) errs.push(inv('caCertPath', c.caCertPath, 'path is not absolute'));
  if (c.controlPlane) {
    validateEndpoint(c.controlPlane.localAPIEndpoint, 'controlPlane.localAPIEndpoint', errs);
    if (c.controlPlane.certificateKey && !KEY_RE.test(c.controlPlane.certificateKey)) {
      errs.push(
        invSecret(
          'controlPlane.certificateKey',
          'the certificate key must be a hex encoded string of 32 bytes (64 hex characters)',
        ),
      );
    }
  }
  return errs;
}
