import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, readlink, realpath, rm, symlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, relative, sep } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract } from 'tar-stream';

export interface ExtractedEntry {
  /** Relative, normalized path inside the archive. */
  path: string;
  type: 'file' | 'dir' | 'symlink';
}

export interface ExtractLimits {
  /** Cap on the decompressed size, against gzip bombs. */
  maxBytes: number;
  maxEntries: number;
}

class UnsafeArchiveError extends Error {
  override name = 'UnsafeArchiveError';
}

/** Counts the decompressed bytes and fails the stream past the cap, before tar-stream buffers anything more. */
function byteCap(max: number): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      total += chunk.length;
      if (total > max) done(new UnsafeArchiveError(`archive unpacks to more than ${max} bytes`));
      else done(null, chunk);
    },
  });
}

/** tar-stream's wording for a damaged archive, in ours. */
function describeTarError(err: Error): Error {
  if (err instanceof UnsafeArchiveError) return err;
  if (/Invalid tar header/.test(err.message))
    return new UnsafeArchiveError('tar header checksum mismatch (not a tar archive or corrupt)');
  if (/Unexpected end of data/.test(err.message)) return new UnsafeArchiveError('archive is truncated');
  return err;
}

/**
 * Unpacks a .tar.gz into `dest`, which must be a fresh, empty directory that nothing else writes to. tar-stream
 * parses the headers (ustar, pax and GNU long names, checksums); what may be written is decided here.
 *
 * Refused: absolute names, `..` components, hard links, devices and FIFOs, symlinks that point outside `dest`
 * (checked on the finished tree with realpath, so chains of links cannot escape either) or nowhere, and any
 * entry whose parent path runs through a symlink — so no write ever leaves `dest` during extraction.
 * Modes keep the permission bits only (no setuid/setgid/sticky, no group/other write); owners are not restored.
 */
export async function extractTarGz(
  archive: string,
  dest: string,
  limits: ExtractLimits,
): Promise<ExtractedEntry[]> {
  const extract = tarExtract();
  const feeding = pipeline(createReadStream(archive), createGunzip(), byteCap(limits.maxBytes), extract);
  // the first failure of the feeding side ends the loop below through the extract stream
  feeding.catch(() => undefined);
  const entries: ExtractedEntry[] = [];
  const seen = new Map<string, ExtractedEntry['type']>();
  try {
    for await (const entry of extract) {
      const { name: rawName, type, mode = 0o644, linkname } = entry.header;
      if (entries.length >= limits.maxEntries)
        throw new UnsafeArchiveError(`more than ${limits.maxEntries} entries`);
      const path = safeEntryPath(rawName);
      switch (type) {
        case 'file':
        case 'contiguous-file': {
          if (path === '') throw new UnsafeArchiveError('file entry with an empty name');
          await prepareTarget(dest, path, seen);
          await writeFileEntry(entry, join(dest, path), mode);
          record(entries, seen, { path, type: 'file' });
          break;
        }
        case 'directory': {
          entry.resume();
          if (path === '') break;
          await ensureDir(dest, path, seen);
          record(entries, seen, { path, type: 'dir' });
          break;
        }
        case 'symlink': {
          entry.resume();
          if (path === '') throw new UnsafeArchiveError('symlink entry with an empty name');
          checkLinkTarget(path, linkname ?? '');
          await prepareTarget(dest, path, seen);
          await symlink(linkname ?? '', join(dest, path));
          record(entries, seen, { path, type: 'symlink' });
          break;
        }
        case 'link':
          throw new UnsafeArchiveError(`${rawName}: hard links are not accepted`);
        case 'character-device':
        case 'block-device':
          throw new UnsafeArchiveError(`${rawName}: device files are not accepted`);
        case 'fifo':
          throw new UnsafeArchiveError(`${rawName}: FIFOs are not accepted`);
        default:
          throw new UnsafeArchiveError(`${rawName}: unsupported entry type ${JSON.stringify(type)}`);
      }
    }
    await feeding;
    await checkSymlinksStayInside(dest, entries);
    return entries;
  } catch (err) {
    throw describeTarError(err as Error);
  } finally {
    extract.destroy();
    await feeding.catch(() => undefined);
  }
}

function record(
  entries: ExtractedEntry[],
  seen: Map<string, ExtractedEntry['type']>,
  e: ExtractedEntry,
): void {
  const i = entries.findIndex((x) => x.path === e.path);
  if (i >= 0) entries.splice(i, 1);
  entries.push(e);
  seen.set(e.path, e.type);
}

/** Turns an archive name into a relative path, or refuses it. '' means the archive root ("./"). */
function safeEntryPath(name: string): string {
  if (name.includes('\0')) throw new UnsafeArchiveError(`${JSON.stringify(name)}: NUL in name`);
  if (name.startsWith('/')) throw new UnsafeArchiveError(`${name}: absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new UnsafeArchiveError(`${name}: ".." in path`);
  return parts.join('/');
}

function checkLinkTarget(path: string, target: string): void {
  if (target === '' || target.includes('\0'))
    throw new UnsafeArchiveError(`${path}: empty or invalid link target`);
  if (isAbsolute(target)) throw new UnsafeArchiveError(`${path}: symlink to absolute path ${target}`);
  const resolved = normalize(join(dirname(path), target));
  if (resolved === '..' || resolved.startsWith(`..${sep}`)) {
    throw new UnsafeArchiveError(`${path}: symlink ${target} points outside the install directory`);
  }
}

/** Creates the parents of `path` and clears a previous entry of the same name; refuses to go through links. */
async function prepareTarget(
  dest: string,
  path: string,
  seen: Map<string, ExtractedEntry['type']>,
): Promise<void> {
  const parent = dirname(path);
  if (parent !== '.') await ensureDir(dest, parent, seen);
  const st = await lstat(join(dest, path)).catch(() => null);
  if (st?.isDirectory()) throw new UnsafeArchiveError(`${path}: replaces a directory`);
  // A later entry of the same name wins, as with tar; removing first means we never write through an old link.
  if (st) await rm(join(dest, path));
}

async function ensureDir(
  dest: string,
  path: string,
  seen: Map<string, ExtractedEntry['type']>,
): Promise<void> {
  let cur = '';
  for (const part of path.split('/')) {
    cur = cur ? `${cur}/${part}` : part;
    const full = join(dest, cur);
    const st = await lstat(full).catch(() => null);
    if (st === null) {
      await mkdir(full, { mode: 0o755 });
      if (!seen.has(cur)) seen.set(cur, 'dir');
    } else if (st.isSymbolicLink()) {
      throw new UnsafeArchiveError(`${path}: path runs through the symlink ${cur}`);
    } else if (!st.isDirectory()) {
      throw new UnsafeArchiveError(`${path}: ${cur} is not a directory`);
    }
  }
}

async function writeFileEntry(data: AsyncIterable<Buffer>, full: string, mode: number): Promise<void> {
  const perm = (mode & 0o755) | 0o600;
  const handle = await open(full, 'wx', perm);
  try {
    for await (const chunk of data) await handle.write(chunk);
    await handle.chmod(perm);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function checkSymlinksStayInside(dest: string, entries: ExtractedEntry[]): Promise<void> {
  const root = await realpath(dest);
  for (const e of entries) {
    if (e.type !== 'symlink') continue;
    const full = join(dest, e.path);
    let real: string;
    try {
      real = await realpath(full);
    } catch {
      throw new UnsafeArchiveError(
        `${e.path}: symlink to ${await readlink(full)} points nowhere inside the archive`,
      );
    }
    const rel = relative(root, real);
    if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
      throw new UnsafeArchiveError(`${e.path}: symlink resolves outside the install directory`);
    }
  }
}
