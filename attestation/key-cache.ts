import { createHash } from 'node:crypto';
import { parseTpmtPublic, type TpmPublic } from './tpm-structures.js';

// Turning TPMT_PUBLIC into a KeyObject costs about as much as the signature check itself (notes P7), and the same
// few AKs and EKs come back on every connection, so parsed keys are kept by the SHA-256 of their bytes.
const LIMIT = 4096;
const cache = new Map<string, TpmPublic>();

/** parseTpmtPublic with a bounded cache keyed by SHA-256 of the bytes. Parse errors are not cached. */
export function parsePublicCached(bytes: Buffer, structure = 'TPMT_PUBLIC'): TpmPublic {
  const key = createHash('sha256').update(bytes).digest('base64');
  const hit = cache.get(key);
  if (hit) return hit;
  const parsed = parseTpmtPublic(bytes, structure);
  if (cache.size >= LIMIT) cache.clear();
  cache.set(key, parsed);
  return parsed;
}

export function clearPublicKeyCache(): void {
  cache.clear();
}
