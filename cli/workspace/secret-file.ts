// Small JSON files of base64 secrets, 0600. Created exclusively (two CLIs racing in one workspace agree on one
// secret), validated on every read, and never quoted in an error.
import { randomBytes } from 'node:crypto';
import { link, open, rm } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { trackTempFile, writeFileAtomic } from '../../common/atomic-file.js';
import { decodeBase64 } from '../../common/base64.js';
import { readOptional, WorkspaceError } from './paths.js';

/** Field name → required length in bytes. */
export type SecretLayout = Record<string, number>;

export function parseSecretFile(bytes: Buffer, file: string, layout: SecretLayout): Record<string, Buffer> {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    // JSON.parse messages quote the input: say nothing about the content
    throw new WorkspaceError(file, 'not valid JSON (the file is corrupt; restore it from a backup)');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new WorkspaceError(file, `expected a JSON object with ${Object.keys(layout).join(', ')}`);
  }
  const fields = doc as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (!(key in layout)) {
      throw new WorkspaceError(
        file,
        `unknown field "${key.slice(0, 40)}" (expected ${Object.keys(layout).join(', ')})`,
      );
    }
  }
  const out: Record<string, Buffer> = {};
  for (const [key, size] of Object.entries(layout)) {
    if (fields[key] === undefined) throw new WorkspaceError(file, `"${key}": missing`);
    const value = decodeBase64(fields[key]);
    if (value === undefined) throw new WorkspaceError(file, `"${key}": expected standard base64`);
    if (value.length !== size) {
      throw new WorkspaceError(file, `"${key}": expected ${size} bytes, got ${value.length}`);
    }
    out[key] = value;
  }
  return out;
}

export function formatSecretFile(values: Record<string, Buffer>): string {
  const doc: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) doc[k] = v.toString('base64');
  return `${JSON.stringify(doc, null, 2)}\n`;
}

export async function readSecretFile(
  path: string,
  layout: SecretLayout,
): Promise<Record<string, Buffer> | undefined> {
  const file = basename(path);
  const bytes = await readOptional(path, file);
  return bytes === undefined ? undefined : parseSecretFile(bytes, file, layout);
}

/**
 * Writes the file only if it does not exist yet: fully written (temp file, fsync) before it appears under its
 * name via link(2), which fails rather than replace. Returns false when another writer got there first.
 */
export async function createSecretFileExclusive(path: string, contents: string): Promise<boolean> {
  // Tracked so that an exit mid-create (a Ctrl-C) removes it: it holds the secret.
  const { tmp, release } = trackTempFile(path, 'new');
  try {
    await writeFileAtomic(tmp, contents, { mode: 0o600 });
    await link(tmp, path);
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new WorkspaceError(
      basename(path),
      `cannot create (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  } finally {
    await rm(tmp, { force: true });
    release();
  }
}

/** Reads the file, or creates it with fresh random values; a concurrent creator's values win consistently. */
export async function loadOrCreateSecretFile(
  path: string,
  layout: SecretLayout,
): Promise<{ values: Record<string, Buffer>; created: boolean }> {
  const existing = await readSecretFile(path, layout);
  if (existing) return { values: existing, created: false };
  const values: Record<string, Buffer> = {};
  for (const [k, size] of Object.entries(layout)) values[k] = randomBytes(size);
  if (await createSecretFileExclusive(path, formatSecretFile(values))) return { values, created: true };
  const winner = await readSecretFile(path, layout);
  if (!winner) throw new WorkspaceError(basename(path), 'vanished while being created');
  return { values: winner, created: false };
}
