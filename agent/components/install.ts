import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, open, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../log/index.js';
import { describeCause, downloadVerified, HashMismatchError } from './download.js';
import { type Component, displayUrl, validateComponents } from './spec.js';
import { extractTarGz } from './tar.js';

export interface InstallOptions {
  /** Install under this directory instead of / (tests, and kubeadm's --rootfs). */
  rootfs?: string;
  log: Logger;
  signal?: AbortSignal;
  /** Per-component download timeout. */
  timeoutMs?: number;
  /** Per-component download size cap. */
  maxBytes?: number;
  /** Cap on what one tarball unpacks to. */
  maxExtractedBytes?: number;
}

export class ComponentInstallError extends Error {
  override name = 'ComponentInstallError';
  constructor(
    readonly index: number,
    readonly url: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`component ${index} (${displayUrl(url)}): ${message}`, options);
  }
}

/** When this agent started: download leftovers older than that belong to an agent that was killed. */
const PROCESS_START_MS = performance.timeOrigin;
const LEFTOVER = /^(\.sextant-download\.[0-9a-f]{12}\.tmp|\.sextant-stage-.+)$/;

/**
 * Removes what a killed agent's install left in `dir`: a partial download (its temp file) or a half-unpacked
 * staging directory. Only entries older than this process: the ones of an install running now are newer.
 */
export async function removeStaleDownloads(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!LEFTOVER.test(name)) continue;
    const info = await lstat(join(dir, name)).catch(() => undefined);
    if (!info || info.mtimeMs >= PROCESS_START_MS) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    removed += 1;
  }
  return removed;
}

const DEFAULT_TIMEOUT_MS = 5 * 60_000;
const DEFAULT_MAX_BYTES = 1024 ** 3;
const DEFAULT_MAX_EXTRACTED_BYTES = 4 * 1024 ** 3;
const MAX_ENTRIES = 100_000;

interface Move {
  from: string;
  to: string;
  index: number;
}

/**
 * Downloads, verifies and installs the components, all or nothing.
 *
 * Strategy: stage everything first, then move it all into place at the end. Every download is hashed into a
 * temporary file next to its target (same filesystem, so the final rename is atomic) and tarballs are unpacked
 * into a staging directory beside their install directory; nothing is touched at any install path until every
 * component has been fetched, verified and unpacked. The commit renames staged files into place one by one,
 * keeping whatever they replace as a backup; if a rename fails, the moves done so far are undone in reverse
 * order and the backups restored. Backups are deleted only once every move has succeeded.
 */
export async function installComponents(
  components: readonly Component[],
  opts: InstallOptions,
): Promise<void> {
  const specs = validateComponents(components);
  rejectDuplicateTargets(specs);
  const log = opts.log;
  const stage = new Staging();
  try {
    const moves: Move[] = [];
    const dirsToEnsure: { path: string; index: number }[] = [];
    for (const [index, c] of specs.entries()) {
      opts.signal?.throwIfAborted();
      const target = opts.rootfs ? join(opts.rootfs, c.installPath) : c.installPath;
      // Downloads and unpacking happen beside what they become, so the final renames stay on one file system:
      // next to a file, inside a directory (whose parent may be read-only, like /usr under ProtectSystem).
      const parent = c.extract ? target : dirname(target);
      await stage.mkdirp(parent);
      const stale = await removeStaleDownloads(parent);
      if (stale > 0)
        log.info('removed a partial download an earlier agent left', { dir: parent, entries: stale });
      log.info('downloading component', { index, url: displayUrl(c.url), installPath: c.installPath });
      let tmp: string;
      try {
        tmp = await downloadVerified({
          url: c.url,
          sha256: c.sha256,
          dir: parent,
          maxBytes: opts.maxBytes ?? DEFAULT_MAX_BYTES,
          timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          signal: opts.signal,
        });
      } catch (err) {
        if (err instanceof HashMismatchError) {
          throw new ComponentInstallError(index, c.url, err.message, { cause: err });
        }
        throw new ComponentInstallError(index, c.url, `download failed: ${describeCause(err)}`, {
          cause: err,
        });
      }
      stage.tempFiles.push(tmp);

      if (!c.extract) {
        await chmod(tmp, 0o755);
        moves.push({ from: tmp, to: target, index });
        continue;
      }
      const staging = await mkdtemp(join(parent, '.sextant-stage-'));
      stage.stagingDirs.push(staging);
      let entries: Awaited<ReturnType<typeof extractTarGz>>;
      try {
        entries = await extractTarGz(tmp, staging, {
          maxBytes: opts.maxExtractedBytes ?? DEFAULT_MAX_EXTRACTED_BYTES,
          maxEntries: MAX_ENTRIES,
        });
      } catch (err) {
        throw new ComponentInstallError(index, c.url, `cannot unpack: ${describeCause(err)}`, { cause: err });
      }
      await rm(tmp, { force: true });
      dirsToEnsure.push({ path: target, index });
      for (const e of entries) {
        if (e.type === 'dir') dirsToEnsure.push({ path: join(target, e.path), index });
        else moves.push({ from: join(staging, e.path), to: join(target, e.path), index });
      }
      log.debug('component unpacked', { index, entries: entries.length });
    }

    opts.signal?.throwIfAborted();
    await commit(specs, moves, dirsToEnsure, stage);
    for (const [index, c] of specs.entries()) {
      log.info('component installed', { index, installPath: c.installPath, extract: c.extract });
    }
  } catch (err) {
    await stage.rollback(log);
    throw err;
  } finally {
    await stage.cleanup();
  }
}

function rejectDuplicateTargets(specs: Component[]): void {
  const seen = new Map<string, number>();
  for (const [i, c] of specs.entries()) {
    if (c.extract) continue;
    const prev = seen.get(c.installPath);
    if (prev !== undefined) {
      throw new ComponentInstallError(
        i,
        c.url,
        `installPath ${c.installPath} is also the target of component ${prev}`,
      );
    }
    seen.set(c.installPath, i);
  }
}

async function commit(
  specs: Component[],
  moves: Move[],
  dirs: { path: string; index: number }[],
  stage: Staging,
) {
  for (const d of dirs) {
    try {
      await stage.mkdirp(d.path);
    } catch (err) {
      const c = specs[d.index]!;
      throw new ComponentInstallError(d.index, c.url, `cannot create ${d.path}: ${describeCause(err)}`, {
        cause: err,
      });
    }
  }
  for (const m of moves) {
    try {
      await stage.mkdirp(dirname(m.to));
      const existing = await lstat(m.to).catch(() => null);
      if (existing?.isDirectory()) throw new Error(`${m.to} is a directory`);
      if (existing) {
        const backup = join(
          dirname(m.to),
          `.${basename(m.to)}.sextant-backup-${randomBytes(4).toString('hex')}`,
        );
        await rename(m.to, backup);
        stage.undo.push(() => rename(backup, m.to));
        stage.backups.push(backup);
      }
      await rename(m.from, m.to);
      stage.undo.push(() => rm(m.to, { force: true }));
    } catch (err) {
      const c = specs[m.index]!;
      throw new ComponentInstallError(m.index, c.url, `cannot move into place: ${describeCause(err)}`, {
        cause: err,
      });
    }
  }
  stage.committed = true;
  for (const d of new Set(moves.map((m) => dirname(m.to)))) await fsyncDir(d);
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r').catch(() => null);
  if (!h) return;
  try {
    await h.sync();
  } catch {
    // Not every filesystem supports fsync on directories; the rename itself has happened.
  } finally {
    await h.close();
  }
}

/** What an install has done so far, so a failure can take it back. */
class Staging {
  tempFiles: string[] = [];
  stagingDirs: string[] = [];
  backups: string[] = [];
  createdDirs: string[] = [];
  undo: (() => Promise<unknown>)[] = [];
  committed = false;

  /** mkdir -p that remembers each directory it created, deepest last. */
  async mkdirp(path: string): Promise<void> {
    const missing: string[] = [];
    let cur = path;
    for (;;) {
      const st = await lstat(cur).catch(() => null);
      if (st) break;
      missing.unshift(cur);
      const up = dirname(cur);
      if (up === cur) break;
      cur = up;
    }
    for (const dir of missing) {
      await mkdir(dir, { mode: 0o755 });
      this.createdDirs.push(dir);
    }
  }

  async rollback(log: Logger): Promise<void> {
    while (this.undo.length > 0) {
      const step = this.undo.pop()!;
      try {
        await step();
      } catch (err) {
        log.error('component rollback step failed', { error: describeCause(err) });
      }
    }
    this.backups = [];
    for (const dir of [...this.stagingDirs]) await rm(dir, { recursive: true, force: true });
    for (const f of this.tempFiles) await rm(f, { force: true });
    // Only directories this install created, deepest first, and only if they are empty again.
    for (const dir of [...this.createdDirs].reverse()) await rmdir(dir).catch(() => undefined);
  }

  async cleanup(): Promise<void> {
    for (const f of this.tempFiles) await rm(f, { force: true });
    for (const dir of this.stagingDirs) await rm(dir, { recursive: true, force: true });
    if (this.committed) for (const b of this.backups) await rm(b, { recursive: true, force: true });
  }
}
