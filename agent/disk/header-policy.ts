// The strict allowlist a LUKS2 header must meet before the disk is opened. The host owns the disk's bytes: it can
// swap in a header that still opens with the node's key but encrypts with cipher_null, adds a keyslot it knows,
// or maps a second segment in the clear. Every field the disk-mapper does not write itself is a difference.
import type { DiskLayout } from './layout.js';
import { DISK_TOKEN_TYPE } from './layout.js';

export class HeaderRefusedError extends Error {
  override name = 'HeaderRefusedError';
  constructor(
    readonly device: string,
    readonly differences: readonly string[],
  ) {
    super(`LUKS2 header of ${device} refused: ${differences.join('; ')}`);
  }
}

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function show(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? 'nothing' : text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

class Differences {
  readonly list: string[] = [];

  expect(path: string, actual: unknown, expected: unknown): void {
    if (JSON.stringify(actual) !== JSON.stringify(expected))
      this.list.push(`${path}: expected ${show(expected)}, got ${show(actual)}`);
  }

  /** `object` has exactly `keys` (missing ones and extra ones are both differences). */
  keys(path: string, object: unknown, keys: readonly string[]): object is Json {
    if (!isObject(object)) {
      this.list.push(`${path}: expected an object, got ${show(object)}`);
      return false;
    }
    const extra = Object.keys(object).filter((k) => !keys.includes(k));
    const missing = keys.filter((k) => !(k in object));
    if (extra.length > 0)
      this.list.push(`${path}: unexpected ${extra.map((k) => JSON.stringify(k)).join(', ')}`);
    if (missing.length > 0)
      this.list.push(`${path}: missing ${missing.map((k) => JSON.stringify(k)).join(', ')}`);
    return true;
  }

  base64(path: string, value: unknown, bytes: number): void {
    if (typeof value !== 'string' || Buffer.from(value, 'base64').length !== bytes)
      this.list.push(`${path}: expected ${bytes} base64 bytes, got ${show(value)}`);
  }
}

const DECIMAL = /^(0|[1-9][0-9]{0,19})$/;

/**
 * The differences between a header (the JSON of `crypt_dump_json`) and what the disk-mapper formats with `layout`;
 * empty when the header is allowed.
 */
export function headerDifferences(headerJson: string, layout: DiskLayout): string[] {
  const d = new Differences();
  let header: unknown;
  try {
    header = JSON.parse(headerJson);
  } catch {
    return ['header: not JSON'];
  }
  if (!d.keys('header', header, ['keyslots', 'tokens', 'segments', 'digests', 'config'])) return d.list;
  const f = layout.format;
  const encryption = `${f.cipher}-${f.cipherMode}`;

  // keyslots: only the allowed slot numbers, each a PBKDF2 luks2 keyslot over the whole volume key.
  const slots = isObject(header.keyslots) ? Object.keys(header.keyslots) : [];
  if (!isObject(header.keyslots)) d.list.push(`keyslots: expected an object, got ${show(header.keyslots)}`);
  for (const id of slots) {
    const p = `keyslots.${id}`;
    if (!layout.keyslots.map(String).includes(id)) {
      d.list.push(`${p}: unexpected keyslot (allowed: ${layout.keyslots.join(', ')})`);
      continue;
    }
    const slot = (header.keyslots as Json)[id];
    if (
      !d.keys(p, slot, [
        'type',
        'key_size',
        'af',
        'area',
        'kdf',
        ...(isObject(slot) && 'priority' in slot ? ['priority'] : []),
      ])
    )
      continue;
    d.expect(`${p}.type`, slot.type, 'luks2');
    d.expect(`${p}.key_size`, slot.key_size, f.volumeKeyBytes);
    if (d.keys(`${p}.af`, slot.af, ['type', 'stripes', 'hash'])) {
      d.expect(`${p}.af.type`, slot.af.type, 'luks1');
      d.expect(`${p}.af.stripes`, slot.af.stripes, 4000);
      d.expect(`${p}.af.hash`, slot.af.hash, f.pbkdf.hash);
    }
    if (d.keys(`${p}.area`, slot.area, ['type', 'offset', 'size', 'encryption', 'key_size'])) {
      d.expect(`${p}.area.type`, slot.area.type, 'raw');
      d.expect(`${p}.area.encryption`, slot.area.encryption, encryption);
      d.expect(`${p}.area.key_size`, slot.area.key_size, f.volumeKeyBytes - (f.integrity === null ? 0 : 32));
      for (const k of ['offset', 'size'] as const) {
        const value = slot.area[k];
        if (typeof value !== 'string' || !DECIMAL.test(value) || Number(value) >= layout.dataOffset)
          d.list.push(
            `${p}.area.${k}: expected a decimal below the data offset ${layout.dataOffset}, got ${show(value)}`,
          );
      }
    }
    if (d.keys(`${p}.kdf`, slot.kdf, ['type', 'hash', 'iterations', 'salt'])) {
      d.expect(`${p}.kdf.type`, slot.kdf.type, f.pbkdf.type);
      d.expect(`${p}.kdf.hash`, slot.kdf.hash, f.pbkdf.hash);
      d.expect(`${p}.kdf.iterations`, slot.kdf.iterations, f.pbkdf.iterations);
      d.base64(`${p}.kdf.salt`, slot.kdf.salt, 32);
    }
    if (isObject(slot) && 'priority' in slot) d.expect(`${p}.priority`, slot.priority, 1);
  }

  // tokens: at most the disk-mapper's own, which holds no key material and names no keyslot.
  if (d.keys('tokens', header.tokens, Object.keys(isObject(header.tokens) ? header.tokens : {}))) {
    for (const [id, token] of Object.entries(header.tokens as Json)) {
      const p = `tokens.${id}`;
      if (id !== '0') {
        d.list.push(`${p}: unexpected token (only token 0, ${DISK_TOKEN_TYPE})`);
        continue;
      }
      if (!d.keys(p, token, ['type', 'keyslots', 'state'])) continue;
      d.expect(`${p}.type`, token.type, DISK_TOKEN_TYPE);
      d.expect(`${p}.keyslots`, token.keyslots, []);
      if (token.state !== 'uninitialized' && token.state !== 'initialized')
        d.list.push(`${p}.state: expected "uninitialized" or "initialized", got ${show(token.state)}`);
    }
  }

  // segments: exactly one, encrypted (and integrity-protected) from the data offset to the end of the disk.
  if (d.keys('segments', header.segments, ['0'])) {
    const seg = (header.segments as Json)['0'];
    const keys = ['type', 'offset', 'size', 'iv_tweak', 'encryption', 'sector_size'];
    if (f.integrity !== null) keys.push('integrity');
    if (d.keys('segments.0', seg, keys)) {
      d.expect('segments.0.type', seg.type, 'crypt');
      d.expect('segments.0.offset', seg.offset, String(layout.dataOffset));
      d.expect('segments.0.size', seg.size, 'dynamic');
      d.expect('segments.0.iv_tweak', seg.iv_tweak, '0');
      d.expect('segments.0.encryption', seg.encryption, encryption);
      d.expect('segments.0.sector_size', seg.sector_size, f.sectorSize);
      if (f.integrity !== null)
        d.expect('segments.0.integrity', seg.integrity, {
          type: f.integrity,
          journal_encryption: 'none',
          journal_integrity: 'none',
        });
    }
  }

  // digests: one PBKDF2 digest binding every keyslot to segment 0.
  if (d.keys('digests', header.digests, ['0'])) {
    const dig = (header.digests as Json)['0'];
    if (d.keys('digests.0', dig, ['type', 'keyslots', 'segments', 'hash', 'iterations', 'salt', 'digest'])) {
      d.expect('digests.0.type', dig.type, 'pbkdf2');
      d.expect('digests.0.keyslots', dig.keyslots, slots);
      d.expect('digests.0.segments', dig.segments, ['0']);
      d.expect('digests.0.hash', dig.hash, f.pbkdf.hash);
      if (typeof dig.iterations !== 'number' || dig.iterations < 1000)
        d.list.push(`digests.0.iterations: expected a number of at least 1000, got ${show(dig.iterations)}`);
      d.base64('digests.0.salt', dig.salt, 32);
      d.base64('digests.0.digest', dig.digest, 32);
    }
  }

  // config: the sizes format writes, and no flags or requirements (reencryption, etc.).
  if (d.keys('config', header.config, ['json_size', 'keyslots_size'])) {
    const config = header.config as Json;
    d.expect('config.json_size', config.json_size, String(layout.jsonSize));
    d.expect('config.keyslots_size', config.keyslots_size, String(layout.keyslotsSize));
  }
  return d.list;
}

/** Throws HeaderRefusedError naming every difference. */
export function checkHeader(device: string, headerJson: string, layout: DiskLayout): void {
  const differences = headerDifferences(headerJson, layout);
  if (differences.length > 0) throw new HeaderRefusedError(device, differences);
}
