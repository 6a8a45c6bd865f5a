import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { type InstanceMetadata, instanceMetadataSchema } from '../../common/contracts/instance-metadata.js';
import { parseWith } from '../../common/schema.js';

export type { InstanceMetadata };

export class MetadataError extends Error {
  constructor(source: string, message: string) {
    super(`instance metadata ${source}: ${message}`);
    this.name = 'MetadataError';
  }
}

async function fetchText(url: string, timeoutMs: number): Promise<string> {
  const parsed = new URL(url);
  if (parsed.protocol === 'file:') return readFile(fileURLToPath(parsed), 'utf8');
  if (parsed.protocol === 'http:' || parsed.protocol === 'https:') {
    const res = await fetch(parsed, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return res.text();
  }
  throw new Error(`unsupported URL scheme ${parsed.protocol} (expected file, http or https)`);
}

export function parseMetadata(source: string, text: string): InstanceMetadata {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new MetadataError(source, `invalid JSON: ${(err as Error).message}`);
  }
  try {
    return parseWith(instanceMetadataSchema, raw);
  } catch (err) {
    throw new MetadataError(source, (err as Error).message);
  }
}

export async function loadMetadata(url: string, timeoutMs = 5000): Promise<InstanceMetadata> {
  let text: string;
  try {
    text = await fetchText(url, timeoutMs);
  } catch (err) {
    throw new MetadataError(url, `cannot read: ${(err as Error).message}`);
  }
  return parseMetadata(url, text);
}
