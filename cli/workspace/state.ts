// sextant-state.yaml: what `init` learned about the cluster. Not secret (the IDs identify, they do not unlock),
// but validated on every read like the config, since verify and upgrade act on it.
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { formatEndpoint, parseEndpoint } from '../config/net.js';
import { describeValue } from '../config/validate.js';
import { decodeBase64 } from './base64.js';
import { STATE_FILE, WorkspaceError, workspacePaths } from './paths.js';

export interface ClusterState {
  /** 32 bytes: HKDF(measurement secret, measurement salt); what PCR 15 of every node is extended with. */
  clusterId: Buffer;
  /** 32 bytes: identifies the holder of the master secret without revealing it. */
  ownerId: Buffer;
  /** The Kubernetes API server, host:port. */
  endpoint: string;
  /** The init endpoint (host:port) of the node `init` made the first control plane. */
  initNode: string;
  createdAt: Date;
}

const KEYS = ['clusterId', 'ownerId', 'endpoint', 'initNode', 'createdAt'] as const;
const ID_BYTES = 32;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function fail(key: string, detail: string): never {
  throw new WorkspaceError(STATE_FILE, key ? `${key}: ${detail}` : detail);
}

function endpointOf(value: unknown, key: string): string {
  const parsed = typeof value === 'string' ? parseEndpoint(value) : 'not a string';
  if (typeof parsed === 'string') fail(key, `expected host:port, got ${describeValue(value)} (${parsed})`);
  return formatEndpoint(parsed);
}

function idOf(value: unknown, key: string): Buffer {
  const bytes = decodeBase64(value);
  if (!bytes || bytes.length !== ID_BYTES)
    fail(key, `expected base64 of ${ID_BYTES} bytes, got ${describeValue(value)}`);
  return bytes;
}

/** Validates a parsed state document. */
export function validateState(doc: unknown): ClusterState {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    fail('', `expected a mapping with ${KEYS.join(', ')}`);
  }
  const m = doc as Record<string, unknown>;
  for (const key of Object.keys(m)) {
    if (!(KEYS as readonly string[]).includes(key))
      fail(key, `unknown key (expected one of: ${KEYS.join(', ')})`);
  }
  for (const key of KEYS) if (m[key] === undefined) fail(key, 'missing');
  const created = m.createdAt;
  if (typeof created !== 'string' || !ISO.test(created) || Number.isNaN(Date.parse(created))) {
    fail('createdAt', `expected an ISO 8601 timestamp, got ${describeValue(created)}`);
  }
  return {
    clusterId: idOf(m.clusterId, 'clusterId'),
    ownerId: idOf(m.ownerId, 'ownerId'),
    endpoint: endpointOf(m.endpoint, 'endpoint'),
    initNode: endpointOf(m.initNode, 'initNode'),
    createdAt: new Date(created),
  };
}

export function parseState(text: string): ClusterState {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors[0]) fail('', `not valid YAML: ${doc.errors[0].message.split('\n')[0]}`);
  let value: unknown;
  try {
    // timestamps stay strings: the core schema does not turn them into Dates
    value = doc.toJS({ maxAliasCount: 0 });
  } catch (err) {
    fail('', `not usable YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return validateState(value);
}

export function formatState(state: ClusterState): string {
  return [
    '# Sextant cluster state, written by "sextant init". Validated on every read.',
    `clusterId: ${JSON.stringify(state.clusterId.toString('base64'))}`,
    `ownerId: ${JSON.stringify(state.ownerId.toString('base64'))}`,
    `endpoint: ${JSON.stringify(state.endpoint)}`,
    `initNode: ${JSON.stringify(state.initNode)}`,
    `createdAt: ${state.createdAt.toISOString()}`,
    '',
  ].join('\n');
}

/** The workspace's cluster state, or undefined before `init`. */
export async function loadState(dir: string): Promise<ClusterState | undefined> {
  let text: string;
  try {
    text = await readFile(workspacePaths(dir).state, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    fail('', `cannot read (${code ?? 'error'})`);
  }
  return parseState(text);
}

/** Validates, then writes sextant-state.yaml atomically. */
export async function saveState(dir: string, state: ClusterState): Promise<void> {
  const text = formatState(state);
  parseState(text);
  await writeFileAtomic(workspacePaths(dir).state, text, { mode: 0o644 });
}
