// The shape of sextant-conf.yaml (version v1) and its defaults for a local QEMU cluster.
import type { Measurements } from '../../attestation/measurements.js';

export const CONFIG_VERSION = 'v1';

export type Firmware = 'ovmf' | 'seabios';

export interface QemuProviderConfig {
  /** Image build output directory (holds disk.img), or "auto": $SEXTANT_IMAGE_DIR, else image/build/current. */
  image: string;
  vcpus: number;
  memoryMiB: number;
  firmware: Firmware;
  /** IPv4 subnet of the VMs' network namespace, or "auto" (derived from the workspace path). */
  subnet: string;
}

export interface ComponentConfig {
  /** http, https or file URL. */
  url: string;
  /** 64 lowercase hex digits. */
  sha256: string;
  /** Absolute path on the node (a directory when `extract`). */
  installPath: string;
  extract: boolean;
}

export interface KubernetesConfig {
  /** e.g. v1.31.2 */
  version: string;
  serviceCidr: string;
  podCidr: string;
  /** Extra API-server certificate SANs: DNS names or IP addresses. */
  apiServerCertSans: string[];
  components: ComponentConfig[];
}

export type AttestationVariant = 'qemu-vtpm';

export interface AttestationConfig {
  variant: AttestationVariant;
  /** Inline measurements (PCR → expected). Exactly one of `measurements` and `measurementsFile` is set. */
  measurements?: Measurements;
  /** A measurements file (JSON), relative to the workspace or absolute. */
  measurementsFile?: string;
  /** Detached signature of `measurementsFile`; only together with `measurementsPublicKey`. */
  measurementsSignature?: string;
  /** PEM public key (Ed25519 or ECDSA P-256) the measurements file must be signed with. */
  measurementsPublicKey?: string;
  /** PEM files the nodes' EK certificates chain to (root and intermediates), relative to the workspace or absolute. */
  ekCaCertificates: string[];
}

export interface SextantConfig {
  version: typeof CONFIG_VERSION;
  /** Cluster name: a DNS label of at most 32 characters (node names are derived from it). */
  name: string;
  provider: { qemu: QemuProviderConfig };
  nodes: { controlPlanes: number; workers: number };
  kubernetes: KubernetesConfig;
  attestation: AttestationConfig;
  initPort: number;
  joinServicePort: number;
}

export const DEFAULT_KUBERNETES_VERSION = 'v1.31.2';
export const DEFAULT_INIT_PORT = 9000;
export const DEFAULT_JOIN_SERVICE_PORT = 30090;
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
      qemu: { image: 'auto', vcpus: 1, memoryMiB: 2048, firmware: 'ovmf', subnet: 'auto' },
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
    initPort: DEFAULT_INIT_PORT,
    joinServicePort: DEFAULT_JOIN_SERVICE_PORT,
  };
}
