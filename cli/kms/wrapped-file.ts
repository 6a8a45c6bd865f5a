// sextant-mastersecret.wrapped.json: the master secret as the KMS wrapped it, with the key identity and version
// that wrapped it. Useless without the KMS; still 0600, since it is what the KMS would unwrap.
import { basename } from 'node:path';
import * as v from 'valibot';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { parseWith, SchemaError, strictObject } from '../../common/schema.js';
import { readOptional, WorkspaceError } from '../workspace/paths.js';
import { createSecretFileExclusive } from '../workspace/secret-file.js';
import type { WrappedBlob } from './kms.js';

export const WRAPPED_MASTER_SECRET_FILE = 'sextant-mastersecret.wrapped.json';

export interface WrappedRecord extends WrappedBlob {
  /** keyIdentity() of the key that wrapped it, e.g. "transit:transit/sextant". */
  key: string;
}

const recordSchema = strictObject({
  version: v.literal(1, 'expected 1'),
  key: v.pipe(v.string('expected a key identity'), v.nonEmpty('expected a key identity')),
  keyVersion: v.pipe(
    v.string('expected a key version'),
    v.regex(/^[0-9a-f]{1,64}$/, 'expected a key version'),
  ),
  ciphertext: v.pipe(v.string('expected the ciphertext'), v.nonEmpty('expected the ciphertext')),
});

function format(record: WrappedRecord): string {
  const { key, keyVersion, ciphertext } = record;
  return `${JSON.stringify({ version: 1, key, keyVersion, ciphertext }, null, 2)}\n`;
}

export async function readWrapped(path: string): Promise<WrappedRecord | undefined> {
  const file = basename(path);
  const bytes = await readOptional(path, file);
  if (bytes === undefined) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new WorkspaceError(file, 'not valid JSON (the file is corrupt; restore it from a backup)');
  }
  try {
    const { key, keyVersion, ciphertext } = parseWith(recordSchema, doc, { redact: true });
    return { key, keyVersion, ciphertext };
  } catch (err) {
    if (err instanceof SchemaError) {
      throw new WorkspaceError(file, `${err.message} (the file is corrupt; restore it from a backup)`);
    }
    throw err;
  }
}

/** Creates the file unless one exists already (then false: another writer won). */
export function createWrapped(path: string, record: WrappedRecord): Promise<boolean> {
  return createSecretFileExclusive(path, format(record));
}

/** Replaces the file whole (temp file, fsync, rename): a crash leaves the old blob or the new one. */
export function replaceWrapped(path: string, record: WrappedRecord): Promise<void> {
  return writeFileAtomic(path, format(record), { mode: 0o600 });
}
