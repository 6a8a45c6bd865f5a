import { randomInt } from 'node:crypto';
import { stringify } from 'yaml';
import {
  checkInitConfigInput,
  checkJoinConfigInput,
  type InitConfigInput,
  type JoinConfigInput,
  type KubeadmArg,
} from './config-input.js';
import { DOWNLOAD_CERTS_PHASE } from './control-plane-certs.js';
import { tuningProfile } from './tuning.js';

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
 * The bootstrap token init leaves behind when none is asked for: kubeadm would otherwise create one valid for 24 h.
 * Joins never use it (each join ticket carries its own short-lived token), so it only has to outlive init itself.
 */
export const INIT_TOKEN_TTL = '5m0s';

/**
 * Multi-document YAML: InitConfiguration, ClusterConfiguration, KubeletConfiguration, KubeProxyConfiguration.
 * Throws KubeadmConfigError (config-input.ts) for a bad input.
 */
export function initConfiguration(raw: InitConfigInput): string {
  const input = checkInitConfigInput(raw);
  const tuning = tuningProfile(input.tuning);
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
    ...(tuning.timeouts ? { timeouts: { ...tuning.timeouts } } : {}),
  };
  if (input.certificateKey !== undefined) init.certificateKey = input.certificateKey;

  const networking: Record<string, string> = { serviceSubnet: input.serviceCidr, dnsDomain: 'cluster.local' };
  if (input.podCidr) networking.podSubnet = input.podCidr;
  const cluster: Record<string, unknown> = {
    apiVersion: KUBEADM_API_VERSION,
    kind: 'ClusterConfiguration',
    clusterName: input.clusterName,
    kubernetesVersion: input.kubernetesVersion,
    controlPlaneEndpoint: input.controlPlaneEndpoint,
    imageRepository: input.imageRepository ?? IMAGE_REPOSITORY,
    networking,
    apiServer: { certSANs: [...input.apiServerCertSans], ...extraArgs(tuning.apiServerArgs) },
  };
  if (tuning.controllerManagerArgs.length > 0)
    cluster.controllerManager = extraArgs(tuning.controllerManagerArgs);
  if (tuning.schedulerArgs.length > 0) cluster.scheduler = extraArgs(tuning.schedulerArgs);

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

/**
 * A JoinConfiguration with bootstrap-token discovery pinned to the CA, plus the control-plane part if asked.
 * Throws KubeadmConfigError (config-input.ts) for a bad input.
 */
export function joinConfiguration(raw: JoinConfigInput): string {
  const input = checkJoinConfigInput(raw);
  const tuning = tuningProfile(input.tuning);
  const args = [{ name: 'node-ip', value: input.nodeIp }, ...input.kubeletExtraArgs];
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
    ...(tuning.timeouts ? { timeouts: { ...tuning.timeouts } } : {}),
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

/** A component's extraArgs, left out when there are none (kubeadm's own flags then). */
function extraArgs(args: readonly KubeadmArg[]): { extraArgs?: KubeadmArg[] } {
  return args.length > 0 ? { extraArgs: args.map((a) => ({ ...a })) } : {};
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
