// sextant-state.yaml: what `init` learned about the cluster. Not secret (the IDs identify, they do not unlock),
// but validated on every read like the config, since verify and upgrade act on it.
import { readFile } from 'node:fs/promises';
import * as v from 'valibot';
import { parseDocument } from 'yaml';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { decodeBase64 } from '../../common/base64.js';
import { endpointProblem, formatEndpoint, parseEndpoint } from '../../common/net.js';
import { checkedString, matching, parseWith, SchemaError, strictObject } from '../../common/schema.js';
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

const ID_BYTES = 32;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

const id = v.pipe(
  v.string(`expected base64 of ${ID_BYTES} bytes`),
  v.check((s) => decodeBase64(s)?.length === ID_BYTES, `expected base64 of ${ID_BYTES} bytes`),
  v.transform((s) => decodeBase64(s) as Buffer),
);

const endpoint = v.pipe(
  checkedString('host:port', (s) => endpointProblem(s) === undefined, endpointProblem),
  v.transform((s) => formatEndpoint(parseEndpoint(s))),
);

const stateSchema = strictObject(
  {
    clusterId: id,
    ownerId: id,
    endpoint,
    initNode: endpoint,
    createdAt: v.pipe(
      matching(ISO, 'an ISO 8601 timestamp'),
      v.check((s) => !Number.isNaN(Date.parse(s)), 'expected an ISO 8601 timestamp'),
      v.transform((s) => new Date(s)),
    ),
  },
  'a mapping with clusterId, ownerId, endpoint, initNode, createdAt',
);

function fail(key: string, detail: string): never {
  throw new WorkspaceError(STATE_FILE, key ? `${key}: ${detail}` : detail);
}

/** Validates a parsed state document. */
export function validateState(doc: unknown): ClusterState {
  try {
    return parseWith(stateSchema, doc);
  } catch (err) {
    if (err instanceof SchemaError) fail(err.keyPath, err.detail);
    throw err;
  }
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
