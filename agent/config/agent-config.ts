import { readFile } from 'node:fs/promises';
import * as v from 'valibot';
import { METADATA_URL } from '../../common/contracts/instance-metadata.js';
import { DEFAULT_PORTS } from '../../common/contracts/ports.js';
import { describeValue, integer, parseWith, SchemaError } from '../../common/schema.js';
import { KUBEADM_COMMAND_TIMEOUT_MS } from '../kubeadm/driver.js';

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
  /**
   * What this node's JoinService does with a TPM the operator's inventory does not list: 'worker' admits it as a
   * worker named after its EK (autoscaled workers), 'refuse' admits inventory nodes only (docs/security.md).
   */
  unlistedNodes: 'worker' | 'refuse';
}

export const DEFAULT_CONFIG_PATH = '/etc/sextant/agent.json';

export const DEFAULTS: AgentConfig = {
  tcti: 'device:/dev/tpmrm0',
  stateDir: '/var/lib/sextant',
  rootfs: '/',
  metadataUrl: METADATA_URL,
  eventLogPath: '/sys/kernel/security/tpm0/binary_bios_measurements',
  variant: 'qemu-vtpm',
  listenAddress: '0.0.0.0',
  initPort: DEFAULT_PORTS.init,
  joinServicePort: DEFAULT_PORTS.joinService,
  apiServerPort: DEFAULT_PORTS.apiServer,
  kubeadmPath: '/usr/local/bin/kubeadm',
  kubeadmTimeoutMs: KUBEADM_COMMAND_TIMEOUT_MS,
  staticJoinEndpoints: [],
  mdns: true,
  kubeletStart: ['systemctl', 'start', 'kubelet'],
  ekCaCertificates: ['/etc/sextant/ek-ca.pem'],
  joinBurstPerPeer: 10,
  unlistedNodes: 'worker',
};

export class ConfigError extends Error {
  constructor(source: string, keyPath: string, detail: string) {
    super(`${source}: ${keyPath || '(document)'}: ${detail}`);
    this.name = 'ConfigError';
  }
}

const text = v.pipe(v.string('expected a non-empty string'), v.nonEmpty('expected a non-empty string'));
const strings = v.array(
  v.pipe(
    v.string('expected a list of non-empty strings'),
    v.nonEmpty('expected a list of non-empty strings'),
  ),
  'expected a list of non-empty strings',
);
const port = integer(1, 65535, 'a port number 1-65535');

/** One schema per key: the file is checked against all of them, an environment override against its own. */
const FIELDS = {
  tcti: text,
  stateDir: text,
  rootfs: text,
  metadataUrl: text,
  eventLogPath: text,
  variant: text,
  listenAddress: text,
  initPort: port,
  joinServicePort: port,
  apiServerPort: port,
  kubeadmPath: text,
  kubeadmTimeoutMs: integer(1000, Number.MAX_SAFE_INTEGER, 'milliseconds, at least 1000'),
  staticJoinEndpoints: strings,
  mdns: v.boolean('expected true or false'),
  kubeletStart: strings,
  ekCaCertificates: strings,
  joinBurstPerPeer: integer(1, 1_000_000, 'an integer 1-1000000'),
  unlistedNodes: v.picklist(['worker', 'refuse'], 'expected worker or refuse'),
} satisfies Record<keyof AgentConfig, v.GenericSchema>;

const fileSchema = v.partial(
  v.strictObject(FIELDS, (issue) =>
    issue.expected === 'never'
      ? `expected one of the known keys (${Object.keys(FIELDS).join(', ')})`
      : 'expected a JSON object',
  ),
);

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
  unlistedNodes: 'SEXTANT_UNLISTED_NODES',
};

/** Environment values are text: numbers, lists ("a,b") and booleans ("1"/"true", "0"/"false") are read first. */
function fromEnv(key: keyof AgentConfig, value: string): unknown {
  const schema = FIELDS[key];
  if (schema === FIELDS.mdns) {
    return value === '1' || value === 'true' ? true : value === '0' || value === 'false' ? false : value;
  }
  if (schema === strings) return value === '' ? [] : value.split(',').map((s) => s.trim());
  if (typeof DEFAULTS[key] === 'number') return value.trim() === '' ? Number.NaN : Number(value);
  return value;
}

function check<S extends v.GenericSchema>(
  source: string,
  schema: S,
  value: unknown,
  key = '',
): v.InferOutput<S> {
  try {
    return parseWith(schema, value);
  } catch (err) {
    if (!(err instanceof SchemaError)) throw err;
    throw new ConfigError(source, [key, err.keyPath].filter(Boolean).join('.'), err.detail);
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
      throw new ConfigError(path, '', `expected a JSON object, got ${describeValue(parsed)}`);
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
  const config: AgentConfig = { ...DEFAULTS, ...check(path, fileSchema, fileValues) };
  for (const [key, name] of Object.entries(ENV) as [keyof AgentConfig, string][]) {
    const value = env[name];
    if (value === undefined) continue;
    // each key's schema gives its own type; the record assignment cannot see that pairing
    (config as Record<keyof AgentConfig, unknown>)[key] = check(
      `environment ${name}`,
      FIELDS[key],
      fromEnv(key, value),
      key,
    );
  }
  return config;
}
