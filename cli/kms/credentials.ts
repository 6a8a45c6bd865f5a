// A KMS credential (transit token, PKCS#11 PIN) comes from the environment or from a file the operator points at,
// never from sextant-conf.yaml; it is read per command, kept in memory only, and never put into a message.
import { readFile, stat } from 'node:fs/promises';

export class CredentialError extends Error {
  override name = 'CredentialError';
}

/** Reads a credential file: its first line, refused when others may read the file. */
async function readCredentialFile(path: string, what: string): Promise<string> {
  let mode: number;
  let text: string;
  try {
    mode = (await stat(path)).mode;
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CredentialError(
      `${what} file ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  if ((mode & 0o077) !== 0) {
    throw new CredentialError(
      `${what} file ${path}: readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`,
    );
  }
  const value = text.split('\n')[0]?.trim() ?? '';
  if (value === '') throw new CredentialError(`${what} file ${path}: empty`);
  return value;
}

/** The transit token: BAO_TOKEN, VAULT_TOKEN, or the file SEXTANT_KMS_TOKEN_FILE names. */
export async function transitToken(env: NodeJS.ProcessEnv): Promise<string> {
  for (const name of ['BAO_TOKEN', 'VAULT_TOKEN']) {
    const value = env[name]?.trim();
    if (value) return value;
  }
  const file = env.SEXTANT_KMS_TOKEN_FILE;
  if (file) return readCredentialFile(file, 'SEXTANT_KMS_TOKEN_FILE');
  throw new CredentialError(
    'no KMS token: set BAO_TOKEN (or VAULT_TOKEN), or SEXTANT_KMS_TOKEN_FILE to a file holding the token',
  );
}

/** The PKCS#11 user PIN: SEXTANT_PKCS11_PIN, the file SEXTANT_PKCS11_PIN_FILE names, or the URI's pin-source. */
export async function pkcs11Pin(env: NodeJS.ProcessEnv, pinSource: string | undefined): Promise<string> {
  const value = env.SEXTANT_PKCS11_PIN;
  if (value) return value;
  const file = env.SEXTANT_PKCS11_PIN_FILE ?? pinSource;
  if (file)
    return readCredentialFile(file, env.SEXTANT_PKCS11_PIN_FILE ? 'SEXTANT_PKCS11_PIN_FILE' : 'pin-source');
  throw new CredentialError(
    'no PKCS#11 PIN: set SEXTANT_PKCS11_PIN, SEXTANT_PKCS11_PIN_FILE, or pin-source=FILE in the kms URI',
  );
}
