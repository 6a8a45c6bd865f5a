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

const FILE = 'cluster-secrets.json';

export async function saveClusterSecrets(stateDir: string, secrets: ClusterSecrets): Promise<void> {
  const body = {
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
  };
  await writeFileAtomic(join(stateDir, FILE), JSON.stringify(body), { mode: 0o600 });
}

export async function loadClusterSecrets(stateDir: string): Promise<ClusterSecrets | null> {
  const path = join(stateDir, FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  // Never echo the content: it holds the master secret.
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`${path}: not valid JSON`);
  }
  const ms = raw.masterSecret as { key?: unknown; salt?: unknown } | undefined;
  if (typeof ms?.key !== 'string' || typeof ms.salt !== 'string' || typeof raw.measurementSalt !== 'string') {
    throw new Error(`${path}: masterSecret/measurementSalt missing or malformed`);
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
