// Test harness: a temporary directory that is removed when the file, suite or test that made it is done.
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

/**
 * A new directory `<tmpdir>/<prefix>XXXXXX`, removed with all it holds after the scope it is made in: at a file's
 * top level, after the file; inside `describe`, after that suite; inside `it`, after that test. Not from a
 * `before` hook: the hook's own end would remove it.
 */
export function tempDir(prefix: string): string {
  // made at once (not in a before hook), so the caller holds a plain path for module-level tables
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
