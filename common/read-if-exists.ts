import { readFile } from 'node:fs/promises';

/** A file's text, or undefined when it does not exist; any other read error is passed on. */
export async function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
