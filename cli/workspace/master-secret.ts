// sextant-mastersecret.json: {"key": base64, "salt": base64}, 0600. Everything the cluster's keys derive from.

import { writeFileAtomic } from '../../common/atomic-file.js';
import { checkMasterSecret, MASTER_SECRET_BYTES, type MasterSecret, SALT_BYTES } from '../../common/keys.js';
import { workspacePaths } from './paths.js';
import { formatSecretFile, loadOrCreateSecretFile, readSecretFile } from './secret-file.js';

const LAYOUT = { key: MASTER_SECRET_BYTES, salt: SALT_BYTES };

/** The workspace's master secret, or undefined when there is none yet; a malformed file is an error. */
export async function loadMasterSecret(dir: string): Promise<MasterSecret | undefined> {
  const values = await readSecretFile(workspacePaths(dir).masterSecret, LAYOUT);
  return values ? { key: values.key!, salt: values.salt! } : undefined;
}

/** Reuses the workspace's master secret, or creates one (random key and salt) if there is none. */
export async function loadOrCreateMasterSecret(
  dir: string,
): Promise<{ secret: MasterSecret; created: boolean }> {
  const { values, created } = await loadOrCreateSecretFile(workspacePaths(dir).masterSecret, LAYOUT);
  return { secret: { key: values.key!, salt: values.salt! }, created };
}

/** Writes (or replaces) the master secret, e.g. when recovering a workspace from a backup. */
export async function saveMasterSecret(dir: string, secret: MasterSecret): Promise<void> {
  checkMasterSecret(secret);
  const text = formatSecretFile({ key: secret.key, salt: secret.salt });
  await writeFileAtomic(workspacePaths(dir).masterSecret, text, { mode: 0o600 });
}
