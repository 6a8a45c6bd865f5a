import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface DownloadOptions {
  url: string;
  /** Expected SHA-256, lowercase hex. */
  sha256: string;
  /** Directory the temporary file is created in: the target's own, so the final rename stays on one filesystem. */
  dir: string;
  maxBytes: number;
  timeoutMs: number;
  signal?: AbortSignal;
}

export class HashMismatchError extends Error {
  override name = 'HashMismatchError';
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`sha256 mismatch: expected ${expected}, got ${actual}`);
  }
}

/**
 * Streams a URL into a temporary file in `dir`, hashing as it goes, and returns the file's path only if the
 * hash matches. On any failure the temporary file is gone.
 */
export async function downloadVerified(opts: DownloadOptions): Promise<string> {
  const tmp = join(opts.dir, `.sextant-download.${randomBytes(6).toString('hex')}.tmp`);
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const hash = createHash('sha256');
  const handle = await open(tmp, 'wx', 0o600);
  let ok = false;
  try {
    let size = 0;
    for await (const chunk of openSource(opts.url, opts.maxBytes, signal)) {
      size += chunk.byteLength;
      if (size > opts.maxBytes) throw new Error(`larger than the limit of ${opts.maxBytes} bytes`);
      hash.update(chunk);
      await handle.write(chunk);
    }
    if (signal.aborted) throw abortReason(signal, opts.timeoutMs);
    const actual = hash.digest('hex');
    if (actual !== opts.sha256) throw new HashMismatchError(opts.sha256, actual);
    await handle.sync();
    ok = true;
    return tmp;
  } catch (err) {
    if (signal.aborted && !(err instanceof HashMismatchError)) throw abortReason(signal, opts.timeoutMs);
    throw err;
  } finally {
    await handle.close();
    if (!ok) await rm(tmp, { force: true });
  }
}

function abortReason(signal: AbortSignal, timeoutMs: number): Error {
  const reason = signal.reason as { name?: string } | undefined;
  if (reason?.name === 'TimeoutError') return new Error(`download timed out after ${timeoutMs} ms`);
  return new Error('download aborted');
}

async function* openSource(url: string, maxBytes: number, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  const parsed = new URL(url);
  if (parsed.protocol === 'file:') {
    const stream = createReadStream(fileURLToPath(parsed), { signal });
    for await (const chunk of stream) yield chunk as Buffer;
    return;
  }
  let res: Response;
  try {
    res = await fetch(parsed, { signal, redirect: 'follow' });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new Error(`fetch failed: ${describeCause(err)}`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status} ${res.statusText}`.trim());
  }
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel();
    throw new Error(`declares ${declared} bytes, more than the limit of ${maxBytes}`);
  }
  if (!res.body) return;
  // Web streams are async iterable in Node 20.
  for await (const chunk of res.body) yield chunk;
}

/** fetch() hides the useful part (ECONNREFUSED, ENOTFOUND …) in err.cause. */
export function describeCause(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 4; depth++) {
    const e = cur as { message?: string; code?: string; cause?: unknown };
    const text =
      e.code && !e.message?.includes(e.code) ? `${e.code} ${e.message ?? ''}` : (e.message ?? String(cur));
    if (text && !parts.includes(text.trim())) parts.push(text.trim());
    cur = e.cause;
  }
  return parts.join(': ') || 'unknown error';
}
