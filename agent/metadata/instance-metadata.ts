import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';

/** What the provider tells a node about itself: the QEMU stand-in for a cloud's metadata service. */
export interface InstanceMetadata {
  name: string;
  role: 'control-plane' | 'worker';
  /** SHA-256 (hex) of the init secret the operator's CLI holds. */
  initSecretHash: string;
  advertiseAddress: string;
  peers: string[];
  joinEndpoints: string[];
}

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
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw new MetadataError(source, 'expected a JSON object');
  const m = raw as Record<string, unknown>;
  const fail = (key: string, expected: string): never => {
    throw new MetadataError(
      source,
      `${key}: expected ${expected}, got ${JSON.stringify(m[key])?.slice(0, 80)}`,
    );
  };
  const known = new Set(['name', 'role', 'initSecretHash', 'advertiseAddress', 'peers', 'joinEndpoints']);
  for (const key of Object.keys(m))
    if (!known.has(key)) fail(key, `no such key (known: ${[...known].join(', ')})`);
  if (typeof m.name !== 'string' || !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(m.name))
    fail('name', 'a DNS label');
  if (m.role !== 'control-plane' && m.role !== 'worker') fail('role', '"control-plane" or "worker"');
  if (typeof m.initSecretHash !== 'string' || !/^[0-9a-f]{64}$/.test(m.initSecretHash)) {
    fail('initSecretHash', '64 lowercase hex characters');
  }
  if (typeof m.advertiseAddress !== 'string' || isIP(m.advertiseAddress) === 0)
    fail('advertiseAddress', 'an IP address');
  const list = (key: string): string[] => {
    const v = m[key] ?? [];
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string' && s !== ''))
      fail(key, 'a list of strings');
    return v as string[];
  };
  return {
    name: m.name as string,
    role: m.role as InstanceMetadata['role'],
    initSecretHash: m.initSecretHash as string,
    advertiseAddress: m.advertiseAddress as string,
    peers: list('peers'),
    joinEndpoints: list('joinEndpoints'),
  };
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
