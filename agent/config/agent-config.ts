import { readFile } from 'node:fs/promises';

/** Everything the agent needs to know about its node that is not measured: where things are. */
export interface AgentConfig {
  /** TCTI string of the TPM, e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321. */
  tcti: string;
  /** Persistent node state (0700); survives reboots. */
  stateDir: string;
  /** Root of the filesystem kubeadm writes to (`--rootfs`); '/' on a real node. */
  rootfs: string;
  metadataUrl: string;
  eventLogPath: string;
  variant: string;
  listenAddress: string;
  initPort: number;
  joinServicePort: number;
  /** Port of the Kubernetes API server kubeadm sets up on control-plane nodes. */
  apiServerPort: number;
  /** Where the kubeadm component is installed (by its install path in the init request or join ticket). */
  kubeadmPath: string;
  kubeadmTimeoutMs: number;
  /** JoinService endpoints tried besides metadata and mDNS. */
  staticJoinEndpoints: string[];
  /** Whether to browse mDNS for JoinServices. */
  mdns: boolean;
  /** The command that starts kubelet on a rejoin (kubeadm join starts it itself otherwise). */
  kubeletStart: string[];
  /** CA certificates (PEM paths) that EK certificates of peers must chain to. */
  ekCaCertificates: string[];
  /**
   * JoinService calls one peer address may burst before its rate limit (2/s) applies; raise it where many nodes
   * share one address (NAT, a benchmark on loopback).
   */
  joinBurstPerPeer: number;
}

export const DEFAULT_CONFIG_PATH = '/etc/sextant/agent.json';

export const DEFAULTS: AgentConfig = {
  tcti: 'device:/dev/tpmrm0',
  stateDir: '/var/lib/sextant',
  rootfs: '/',
  metadataUrl: 'file:///sys/firmware/qemu_fw_cfg/by_name/opt/sextant/metadata/raw',
  eventLogPath: '/sys/kernel/security/tpm0/binary_bios_measurements',
  variant: 'qemu-vtpm',
  listenAddress: '0.0.0.0',
  initPort: 9000,
  joinServicePort: 30090,
  apiServerPort: 6443,
  kubeadmPath: '/usr/local/bin/kubeadm',
  kubeadmTimeoutMs: 10 * 60_000,
  staticJoinEndpoints: [],
  mdns: true,
  kubeletStart: ['systemctl', 'start', 'kubelet'],
  ekCaCertificates: ['/etc/sextant/ek-ca.pem'],
  joinBurstPerPeer: 10,
};

export class ConfigError extends Error {
  constructor(source: string, key: string, expected: string, got: unknown) {
    super(`${source}: ${key}: expected ${expected}, got ${JSON.stringify(got)?.slice(0, 80)}`);
    this.name = 'ConfigError';
  }
}

type Kind = 'string' | 'port' | 'timeout' | 'strings' | 'boolean' | 'count';
const KINDS: Record<keyof AgentConfig, Kind> = {
  tcti: 'string',
  stateDir: 'string',
  rootfs: 'string',
  metadataUrl: 'string',
  eventLogPath: 'string',
  variant: 'string',
  listenAddress: 'string',
  initPort: 'port',
  joinServicePort: 'port',
  apiServerPort: 'port',
  kubeadmPath: 'string',
  kubeadmTimeoutMs: 'timeout',
  staticJoinEndpoints: 'strings',
  mdns: 'boolean',
  kubeletStart: 'strings',
  ekCaCertificates: 'strings',
  joinBurstPerPeer: 'count',
};

/** Environment overrides, so a test or an operator can point one agent elsewhere without a file. */
const ENV: Partial<Record<keyof AgentConfig, string>> = {
  tcti: 'SEXTANT_TCTI',
  stateDir: 'SEXTANT_STATE_DIR',
  rootfs: 'SEXTANT_ROOTFS',
  metadataUrl: 'SEXTANT_METADATA_URL',
  eventLogPath: 'SEXTANT_EVENT_LOG',
  listenAddress: 'SEXTANT_LISTEN_ADDRESS',
  initPort: 'SEXTANT_INIT_PORT',
  joinServicePort: 'SEXTANT_JOIN_SERVICE_PORT',
  apiServerPort: 'SEXTANT_API_SERVER_PORT',
  kubeadmPath: 'SEXTANT_KUBEADM_PATH',
  staticJoinEndpoints: 'SEXTANT_JOIN_ENDPOINTS',
  mdns: 'SEXTANT_MDNS',
  kubeletStart: 'SEXTANT_KUBELET_START',
  ekCaCertificates: 'SEXTANT_EK_CA',
  joinBurstPerPeer: 'SEXTANT_JOIN_BURST_PER_PEER',
};

function coerce(source: string, key: keyof AgentConfig, value: unknown, fromEnv: boolean): unknown {
  const kind = KINDS[key];
  if (fromEnv && typeof value === 'string') {
    if (kind === 'port' || kind === 'timeout' || kind === 'count') value = Number(value);
    else if (kind === 'strings') value = value === '' ? [] : value.split(',').map((s) => s.trim());
    else if (kind === 'boolean')
      value = value === '1' || value === 'true' ? true : value === '0' || value === 'false' ? false : value;
  }
  switch (kind) {
    case 'string':
      if (typeof value !== 'string' || value === '')
        throw new ConfigError(source, key, 'a non-empty string', value);
      return value;
    case 'port':
      if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 65535) {
        throw new ConfigError(source, key, 'a port number 1-65535', value);
      }
      return value;
    case 'timeout':
      if (!Number.isInteger(value) || (value as number) < 1000) {
        throw new ConfigError(source, key, 'milliseconds, at least 1000', value);
      }
      return value;
    case 'strings':
      if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v !== '')) {
        throw new ConfigError(source, key, 'a list of non-empty strings', value);
      }
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') throw new ConfigError(source, key, 'true or false', value);
      return value;
    case 'count':
      if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 1_000_000) {
        throw new ConfigError(source, key, 'an integer 1-1000000', value);
      }
      return value;
  }
}

/** Builds the configuration from defaults, an optional JSON file, then the environment; unknown keys are errors. */
export async function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): Promise<AgentConfig> {
  const path = env.SEXTANT_AGENT_CONFIG ?? DEFAULT_CONFIG_PATH;
  let fileValues: Record<string, unknown> = {};
  try {
    const text = await readFile(path, 'utf8');
    const parsed: unknown = JSON.parse(text);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ConfigError(path, '(document)', 'a JSON object', parsed);
    }
    fileValues = parsed as Record<string, unknown>;
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    // The default file is optional; a file the operator named explicitly must exist.
    if (!(missing && env.SEXTANT_AGENT_CONFIG === undefined)) {
      if (err instanceof ConfigError) throw err;
      throw new Error(
        `${path}: ${err instanceof SyntaxError ? `invalid JSON: ${err.message}` : (err as Error).message}`,
      );
    }
  }
  const config: Record<string, unknown> = { ...DEFAULTS };
  for (const [key, value] of Object.entries(fileValues)) {
    if (!(key in KINDS))
      throw new ConfigError(path, key, `one of the known keys (${Object.keys(KINDS).join(', ')})`, key);
    config[key] = coerce(path, key as keyof AgentConfig, value, false);
  }
  for (const [key, name] of Object.entries(ENV) as [keyof AgentConfig, string][]) {
    const value = env[name];
    if (value !== undefined) config[key] = coerce(`environment ${name}`, key, value, true);
  }
  return config as unknown as AgentConfig;
}
