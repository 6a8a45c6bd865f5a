import { isAbsolute, normalize } from 'node:path';

/** One Kubernetes component as the InitRequest and the join ticket carry it. */
export interface Component {
  url: string;
  /** Expected SHA-256 of the downloaded bytes, 64 lowercase hex digits. */
  sha256: string;
  /** Absolute path on the node: the file itself, or the directory a tarball is unpacked into. */
  installPath: string;
  /** The download is a .tar.gz to unpack into installPath rather than a single executable. */
  extract: boolean;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const SCHEMES = new Set(['http:', 'https:', 'file:']);

export class ComponentSpecError extends Error {
  override name = 'ComponentSpecError';
  constructor(
    readonly index: number,
    readonly field: keyof Component,
    message: string,
  ) {
    super(`component ${index} ${field}: ${message}`);
  }
}

/** Checks every component before anything is fetched, so a bad request changes nothing on the node. */
export function validateComponents(components: readonly unknown[]): Component[] {
  if (!Array.isArray(components)) throw new TypeError('components: expected an array');
  return components.map((c, i) => validateComponent(c, i));
}

function validateComponent(raw: unknown, index: number): Component {
  if (raw === null || typeof raw !== 'object') {
    throw new ComponentSpecError(index, 'url', 'component is not an object');
  }
  const c = raw as Record<string, unknown>;

  if (typeof c.url !== 'string' || c.url === '') throw new ComponentSpecError(index, 'url', 'missing');
  let url: URL;
  try {
    url = new URL(c.url);
  } catch {
    throw new ComponentSpecError(index, 'url', 'not a valid URL');
  }
  if (!SCHEMES.has(url.protocol)) {
    throw new ComponentSpecError(
      index,
      'url',
      `scheme ${url.protocol} not allowed (expected http, https or file)`,
    );
  }
  if (url.protocol === 'file:' && url.host !== '' && url.host !== 'localhost') {
    throw new ComponentSpecError(index, 'url', 'file URL must not name a remote host');
  }

  if (typeof c.sha256 !== 'string' || !SHA256_HEX.test(c.sha256)) {
    throw new ComponentSpecError(index, 'sha256', 'expected 64 lowercase hex digits');
  }

  if (typeof c.installPath !== 'string' || c.installPath === '') {
    throw new ComponentSpecError(index, 'installPath', 'missing');
  }
  const p = c.installPath;
  if (!isAbsolute(p)) throw new ComponentSpecError(index, 'installPath', 'must be an absolute path');
  if (p.includes('\0')) throw new ComponentSpecError(index, 'installPath', 'contains a NUL byte');
  if (p.split('/').includes('..'))
    throw new ComponentSpecError(index, 'installPath', 'must not contain ".."');
  if (p === '/' || normalize(p) !== p || p.endsWith('/')) {
    throw new ComponentSpecError(index, 'installPath', `must be a normalized path other than / (got ${p})`);
  }

  if (c.extract !== undefined && typeof c.extract !== 'boolean') {
    throw new ComponentSpecError(index, 'extract', 'expected a boolean');
  }
  return { url: c.url, sha256: c.sha256, installPath: p, extract: c.extract === true };
}

/** The URL as it may appear in logs and errors: credentials and query (presigned URLs) are hidden. */
export function displayUrl(raw: string): string {
  try {
    const u = new URL(raw);
    const hadQuery = u.search !== '';
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return hadQuery ? `${u.toString()}?…` : u.toString();
  } catch {
    return '<invalid url>';
  }
}
