// The files of a workspace: one directory per cluster, every command works on it.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

export const STATE_FILE = 'sextant-state.yaml';
export const MASTER_SECRET_FILE = 'sextant-mastersecret.json';
export const ADMIN_CONF_FILE = 'sextant-admin.conf';
/** The init secret `create` hands the nodes (as a hash) and `init` proves knowledge of. */
export const INIT_SECRET_FILE = 'sextant-initsecret.json';

export class WorkspaceError extends Error {
  override name = 'WorkspaceError';
  constructor(
    /** The workspace file concerned (its base name). */
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}

export interface WorkspacePaths {
  dir: string;
  config: string;
  state: string;
  masterSecret: string;
  initSecret: string;
  adminConf: string;
  /** Where a provider keeps its artifacts, e.g. `qemu/`. */
  provider(name: string): string;
}

export function workspacePaths(dir: string): WorkspacePaths {
  const abs = resolve(dir);
  return {
    dir: abs,
    config: join(abs, 'sextant-conf.yaml'),
    state: join(abs, STATE_FILE),
    masterSecret: join(abs, MASTER_SECRET_FILE),
    initSecret: join(abs, INIT_SECRET_FILE),
    adminConf: join(abs, ADMIN_CONF_FILE),
    provider: (name) => join(abs, name),
  };
}

/** Reads a workspace file; undefined when it does not exist, a WorkspaceError naming the file otherwise. */
export async function readOptional(path: string, file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new WorkspaceError(file, `cannot read (${code ?? 'error'})`);
  }
}
