import { MASTER_SECRET_BYTES, type MasterSecret, SALT_BYTES } from '../../common/keys.js';
import { workspacePaths } from './paths.js';
import { loadOrCreateSecretFile } from './secret-file.js';

const LAYOUT = { key: MASTER_SECRET_BYTES, salt: SALT_BYTES };

/** Reuses the workspace's master secret, or creates one (random key and salt) if there is none. */
export async function loadOrCreateMasterSecret(
  dir: string,
): Promise<{ secret: MasterSecret; created: boolean }> {
  const { values, created } = await loadOrCreateSecretFile(workspacePaths(dir).masterSecret, LAYOUT);
  return { secret: { key: values.key!, salt: values.salt! }, created };
}
