// The highest serial a JoinService has accepted for a signed thing, kept on disk so a restart does not forget it.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type * as v from 'valibot';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { readTextIfExists } from '../../common/read-if-exists.js';
import { integer, matching, parseWith, strictObject } from '../../common/schema.js';

const floorFile = strictObject(
  {
    serial: integer(0, Number.MAX_SAFE_INTEGER, 'the highest serial accepted (a non-negative integer)'),
    mac: matching(/^[0-9a-f]{64}$/, 'an HMAC-SHA256 in 64 hex digits'),
  },
  'a serial floor: {"serial": N, "mac": "<hex>"}',
);

/** The MAC binds what the floor is for, so one kind's floor file cannot stand in for another's. */
function floorMac(key: Uint8Array, what: string, serial: number): Buffer {
  return createHmac('sha256', key).update(`sextant serial floor\0${what}\0${serial}`).digest();
}

/**
 * A persisted lower bound: `raise` writes before the caller takes the new serial, so a crash never leaves a thing in
 * use above the floor on disk. MAC'd under a key derived from the master secret: whoever can write the state
 * directory cannot lower it to a value of their choice, only put back an older file of the same cluster (which a
 * TPM NV counter would catch; not done).
 */
export class SerialFloor {
  private constructor(
    readonly path: string,
    private readonly what: string,
    private readonly key: Uint8Array,
    private current: number,
    private written: boolean,
  ) {}

  /** Reads the floor at `path` (0 when there is none); a file that does not parse or verify is an error. */
  static async open(path: string, what: string, key: Uint8Array): Promise<SerialFloor> {
    const text = await readTextIfExists(path);
    if (text === undefined) return new SerialFloor(path, what, key, 0, false);
    let parsed: v.InferOutput<typeof floorFile>;
    try {
      parsed = parseWith(floorFile, JSON.parse(text));
    } catch (err) {
      throw new Error(`${path}: ${what} serial floor: ${(err as Error).message}`);
    }
    const expected = floorMac(key, what, parsed.serial);
    if (!timingSafeEqual(Buffer.from(parsed.mac, 'hex'), expected)) {
      throw new Error(
        `${path}: ${what} serial floor: its MAC does not verify with the cluster's key (edited on disk)`,
      );
    }
    return new SerialFloor(path, what, key, parsed.serial, true);
  }

  get serial(): number {
    return this.current;
  }

  /** Whether a floor is on disk (a first launch has none). */
  get exists(): boolean {
    return this.written;
  }

  /** Persists `serial` as the floor if it is above the current one. */
  async raise(serial: number): Promise<void> {
    if (serial <= this.current && this.written) return;
    const next = Math.max(serial, this.current);
    const mac = floorMac(this.key, this.what, next).toString('hex');
    await writeFileAtomic(this.path, `${JSON.stringify({ serial: next, mac })}\n`, { mode: 0o600 });
    this.current = next;
    this.written = true;
  }
}
