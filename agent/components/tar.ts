import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, readlink, realpath, rm, symlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

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

export class UnsafeArchiveError extends Error {
  override name = 'UnsafeArchiveError';
}

const BLOCK = 512;

/**
 * Unpacks a .tar.gz into `dest`, which must be a fresh, empty directory that nothing else writes to.
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
  const gunzip = createGunzip();
  const feeding = pipeline(createReadStream(archive), gunzip).catch((err: unknown) => {
    gunzip.destroy(err as Error);
  });
  const reader = new ByteReader(gunzip, limits.maxBytes);
  const entries: ExtractedEntry[] = [];
  const seen = new Map<string, ExtractedEntry['type']>();
  try {
    let pending: { path?: string; linkpath?: string; size?: number } = {};
    for (;;) {
      const header = await reader.readBlockOrEnd();
      if (header === null || header.every((b) => b === 0)) break;
      verifyChecksum(header);
      const typeflag = String.fromCharCode(header[156] ?? 0);
      const headerSize = parseNumber(header.subarray(124, 136), 'size');

      if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
        if (headerSize > 1024 * 1024) throw new UnsafeArchiveError('extended header larger than 1 MiB');
        const data = await reader.read(headerSize);
        await reader.skip(padding(headerSize));
        if (typeflag === 'x') pending = { ...pending, ...parsePax(data) };
        else if (typeflag === 'L') pending.path = cString(data);
        else if (typeflag === 'K') pending.linkpath = cString(data);
        // 'g' (global pax header) carries nothing we honour.
        continue;
      }

      const rawName = pending.path ?? ustarName(header);
      const linkname = pending.linkpath ?? cString(header.subarray(157, 257));
      const mode = parseNumber(header.subarray(100, 108), 'mode');
      const size = pending.size ?? headerSize;
      pending = {};

      if (entries.length >= limits.maxEntries)
        throw new UnsafeArchiveError(`more than ${limits.maxEntries} entries`);
      const path = safeEntryPath(rawName);

      switch (typeflag) {
        case '0':
        case '\0':
        case '7': {
          if (path === '') throw new UnsafeArchiveError('file entry with an empty name');
          await prepareTarget(dest, path, seen);
          await writeFileEntry(reader, join(dest, path), size, mode);
          await reader.skip(padding(size));
          record(entries, seen, { path, type: 'file' });
          break;
        }
        case '5': {
          await reader.skip(size + padding(size));
          if (path === '') break;
          await ensureDir(dest, path, seen);
          record(entries, seen, { path, type: 'dir' });
          break;
        }
        case '2': {
          await reader.skip(size + padding(size));
          if (path === '') throw new UnsafeArchiveError('symlink entry with an empty name');
          checkLinkTarget(path, linkname);
          await prepareTarget(dest, path, seen);
          await symlink(linkname, join(dest, path));
          record(entries, seen, { path, type: 'symlink' });
          break;
        }
        case '1':
          throw new UnsafeArchiveError(`${rawName}: hard links are not accepted`);
        case '3':
        case '4':
          throw new UnsafeArchiveError(`${rawName}: device files are not accepted`);
        case '6':
          throw new UnsafeArchiveError(`${rawName}: FIFOs are not accepted`);
        default:
          throw new UnsafeArchiveError(`${rawName}: unsupported entry type ${JSON.stringify(typeflag)}`);
      }
    }
    await checkSymlinksStayInside(dest, entries);
    return entries;
  } finally {
    gunzip.destroy();
    await feeding;
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
export function safeEntryPath(name: string): string {
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

async function writeFileEntry(reader: ByteReader, full: string, size: number, mode: number): Promise<void> {
  const perm = (mode & 0o755) | 0o600;
  const handle = await open(full, 'wx', perm);
  try {
    let left = size;
    while (left > 0) {
      const chunk = await reader.readUpTo(left);
      await handle.write(chunk);
      left -= chunk.length;
    }
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

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.subarray(0, end < 0 ? buf.length : end).toString('utf8');
}

function ustarName(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  const magic = header.subarray(257, 263).toString('latin1');
  if (magic === 'ustar\0') {
    const prefix = cString(header.subarray(345, 500));
    if (prefix) return `${prefix}/${name}`;
  }
  return name;
}

function parseNumber(field: Buffer, what: string): number {
  if (((field[0] ?? 0) & 0x80) !== 0) {
    // GNU base-256 for values that do not fit in octal; negative values are not meaningful here.
    if (((field[0] ?? 0) & 0x40) !== 0) throw new UnsafeArchiveError(`negative ${what}`);
    let n = (field[0] ?? 0) & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + (field[i] ?? 0);
    if (!Number.isSafeInteger(n)) throw new UnsafeArchiveError(`${what} too large`);
    return n;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new UnsafeArchiveError(`invalid ${what} field ${JSON.stringify(text)}`);
  return Number.parseInt(text, 8);
}

function verifyChecksum(header: Buffer): void {
  const stored = parseNumber(header.subarray(148, 156), 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
  if (sum !== stored)
    throw new UnsafeArchiveError('tar header checksum mismatch (not a tar archive or corrupt)');
}

function parsePax(data: Buffer): { path?: string; linkpath?: string; size?: number } {
  const out: { path?: string; linkpath?: string; size?: number } = {};
  let off = 0;
  while (off < data.length) {
    const space = data.indexOf(0x20, off);
    if (space < 0) break;
    const len = Number.parseInt(data.subarray(off, space).toString('latin1'), 10);
    if (!Number.isSafeInteger(len) || len <= 0 || off + len > data.length) {
      throw new UnsafeArchiveError('malformed pax header');
    }
    const record = data.subarray(space + 1, off + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === 'path') out.path = value;
    else if (key === 'linkpath') out.linkpath = value;
    else if (key === 'size') {
      if (!/^\d+$/.test(value)) throw new UnsafeArchiveError('malformed pax size');
      out.size = Number(value);
    }
    off += len;
  }
  return out;
}

/** Exact-length reads over a stream of chunks, with a cap on the bytes it will pull. */
class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly it: AsyncIterator<Buffer>;
  private done = false;
  private total = 0;

  constructor(
    source: AsyncIterable<Buffer>,
    private readonly max: number,
  ) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<void> {
    while (this.buf.length < n && !this.done) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        break;
      }
      this.total += r.value.length;
      if (this.total > this.max)
        throw new UnsafeArchiveError(`archive unpacks to more than ${this.max} bytes`);
      this.buf = this.buf.length === 0 ? r.value : Buffer.concat([this.buf, r.value]);
    }
  }

  async readBlockOrEnd(): Promise<Buffer | null> {
    await this.fill(BLOCK);
    if (this.buf.length === 0) return null;
    return this.read(BLOCK);
  }

  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    if (this.buf.length < n) throw new UnsafeArchiveError('archive is truncated');
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async readUpTo(n: number): Promise<Buffer> {
    await this.fill(1);
    if (this.buf.length === 0) throw new UnsafeArchiveError('archive is truncated');
    const take = Math.min(n, this.buf.length);
    const out = this.buf.subarray(0, take);
    this.buf = this.buf.subarray(take);
    return out;
  }

  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) left -= (await this.readUpTo(left)).length;
  }
}
