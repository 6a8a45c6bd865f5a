import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file.js';
import type { MasterSecret } from '../../common/keys.js';

/**
 * What a control-plane node keeps so its JoinService can admit nodes after a restart: the master secret (keys
 * for every disk), the measurement salt, the measurements nodes are checked against, and what joining nodes
 * install. Lives in the node's state directory (on the encrypted state disk on a real node), mode 0600.
 */
export interface ClusterSecrets {
  masterSecret: MasterSecret;
  measurementSalt: Buffer;
  measurements: string;
  kubernetesVersion: string;
  components: { url: string; sha256: string; installPath: string; extract: boolean }[];
  apiServerEndpoint: string;
  clusterName: string;
}

/** The file's name in the state directory. */
const FILE = 'cluster-secrets.json';

/** Where a control-plane join ticket carries the same file (a path among its control-plane files). */
export const CLUSTER_SECRETS_TICKET_PATH = 'sextant/cluster-secrets.json';

/** The serialized form: what the state directory holds and what a control-plane joiner receives, byte for byte. */
export function serializeClusterSecrets(secrets: ClusterSecrets): string {
  return JSON.stringify({
    masterSecret: {
      key: secrets.masterSecret.key.toString('base64'),
      salt: secrets.masterSecret.salt.toString('base64'),
    },
    measurementSalt: secrets.measurementSalt.toString('base64'),
    measurements: secrets.measurements,
    kubernetesVersion: secrets.kubernetesVersion,
    components: secrets.components,
    apiServerEndpoint: secrets.apiServerEndpoint,
    clusterName: secrets.clusterName,
  });
}

/** Parses the serialized form; `source` names it in errors. Never echoes the content: it holds the master secret. */
export function parseClusterSecrets(source: string, text: string): ClusterSecrets {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`${source}: not valid JSON`);
  }
  const ms = raw.masterSecret as { key?: unknown; salt?: unknown } | undefined;
  if (typeof ms?.key !== 'string' || typeof ms.salt !== 'string' || typeof raw.measurementSalt !== 'string') {
    throw new Error(`${source}: masterSecret/measurementSalt missing or malformed`);
  }
  return {
    masterSecret: { key: Buffer.from(ms.key, 'base64'), salt: Buffer.from(ms.salt, 'base64') },
    measurementSalt: Buffer.from(raw.measurementSalt, 'base64'),
    measurements: String(raw.measurements ?? ''),
    kubernetesVersion: String(raw.kubernetesVersion ?? ''),
    components: (raw.components as ClusterSecrets['components']) ?? [],
    apiServerEndpoint: String(raw.apiServerEndpoint ?? ''),
    clusterName: String(raw.clusterName ?? ''),
  };
}

/** The one owner of the cluster-secrets file in a state directory: written atomically, mode 0600. */
export class ClusterSecretsStore {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, FILE);
  }

  /** The secrets, or null when this node holds none (a worker, or a control plane that never got them). */
  async load(): Promise<ClusterSecrets | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return parseClusterSecrets(this.path, text);
  }

  async save(secrets: ClusterSecrets): Promise<void> {
    await writeFileAtomic(this.path, serializeClusterSecrets(secrets), { mode: 0o600 });
  }

  /**
   * Takes the file a control-plane join ticket carried: parsed first, so a malformed file is refused before it
   * replaces anything, then stored as this node's own.
   */
  async adopt(file: Buffer): Promise<ClusterSecrets> {
    const secrets = parseClusterSecrets(`join ticket ${CLUSTER_SECRETS_TICKET_PATH}`, file.toString('utf8'));
    await this.save(secrets);
    return secrets;
  }

  /**
   * The stored file as bytes, read on demand so a control-plane joiner always gets the current one. Synchronous
   * because the JoinService builds its ticket from it inline.
   */
  readFileSync(): Buffer {
    return readFileSync(this.path);
  }
}
