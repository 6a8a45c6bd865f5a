// The default mode: the master secret as plain base64 in sextant-mastersecret.json (0600). Whoever copies the
// workspace holds it; the KMS modes exist for operators who cannot accept that.
import { MASTER_SECRET_BYTES, type MasterSecret, SALT_BYTES } from '../../common/keys.js';
import { workspacePaths } from '../workspace/paths.js';
import { loadOrCreateSecretFile, readSecretFile } from '../workspace/secret-file.js';

const LAYOUT = { key: MASTER_SECRET_BYTES, salt: SALT_BYTES };

/** Reuses the workspace's master secret, or creates one (random key and salt) if there is none. */
export async function loadOrCreatePlainMasterSecret(
  dir: string,
): Promise<{ secret: MasterSecret; created: boolean }> {
  const { values, created } = await loadOrCreateSecretFile(workspacePaths(dir).masterSecret, LAYOUT);
  return { secret: { key: values.key!, salt: values.salt! }, created };
}

/** The plain master secret, or undefined when the workspace has none. */
export async function readPlainMasterSecret(dir: string): Promise<MasterSecret | undefined> {
  const values = await readSecretFile(workspacePaths(dir).masterSecret, LAYOUT);
  return values ? { key: values.key!, salt: values.salt! } : undefined;
}
