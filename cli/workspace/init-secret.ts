// sextant-initsecret.json: {"secret": base64}, 0600. `create` gives the nodes its SHA-256 (instance metadata);
// `init` sends the secret itself, which only the workspace that created the nodes knows.
import { createHash } from 'node:crypto';
import { workspacePaths } from './paths.js';
import { loadOrCreateSecretFile, readSecretFile } from './secret-file.js';

export const INIT_SECRET_BYTES = 32;
const LAYOUT = { secret: INIT_SECRET_BYTES };

export async function loadInitSecret(dir: string): Promise<Buffer | undefined> {
  return (await readSecretFile(workspacePaths(dir).initSecret, LAYOUT))?.secret;
}

export async function loadOrCreateInitSecret(dir: string): Promise<{ secret: Buffer; created: boolean }> {
  const { values, created } = await loadOrCreateSecretFile(workspacePaths(dir).initSecret, LAYOUT);
  return { secret: values.secret!, created };
}

/** What the nodes' metadata carries: SHA-256 of the secret, lowercase hex. */
export function initSecretHash(secret: Uint8Array): string {
  return createHash('sha256').update(secret).digest('hex');
}
