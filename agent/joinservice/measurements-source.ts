import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { PeerVerifier } from '../../attestation/atls/index.js';
import { enforceMeasurementPolicy } from '../../attestation/measurement-policy.js';
import {
  checkMeasurementsMac,
  type Measurements,
  measurementsSerial,
  parseMeasurementsFile,
} from '../../attestation/measurements.js';
import type { Logger } from '../log/index.js';

/** Where a measurements file's MAC lives: beside it, 32 raw bytes. */
function macPathOf(path: string): string {
  return `${path}.mac`;
}

/**
 * The measurements a JoinService may admit nodes against: a document that parses and enforces the minimum set
 * (an all-warnOnly one would admit any node). The init server checks an init request with it before the node lock.
 */
export function admissionMeasurements(text: string, where = 'measurements'): Measurements {
  return enforceMeasurementPolicy(parseMeasurementsFile(text, where), { where });
}

/**
 * The measurements the JoinService admits nodes against, reloaded when their file changes (an upgrade ships new
 * ones). A replaced file counts only when its MAC (`<file>.mac`, HMAC-SHA256 under the key derived from the master
 * secret) verifies and its serial is above the current one: a file edited on a control plane's disk changes nothing,
 * and an earlier (file, MAC) pair put back after a later one is refused. A join in flight keeps the verifier it
 * started with; a bad new file is refused and the old one stays.
 */
export class MeasurementsSource {
  #verifier: PeerVerifier;
  #text: string;
  /** The highest serial this source has run with; nothing at or below it replaces the current measurements. */
  #serial: number;
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(
    readonly path: string,
    text: string,
    private readonly makeVerifier: (measurements: string) => PeerVerifier,
    private readonly log: Logger,
    /** The cluster's measurements MAC key (common/keys.ts deriveMeasurementsMacKey). */
    private readonly macKey: Uint8Array,
  ) {
    this.#text = text;
    this.#serial = measurementsSerial(text, path);
    this.#verifier = makeVerifier(text);
  }

  /** The serial of the measurements in use (0: a document without one). */
  get serial(): number {
    return this.#serial;
  }

  current(): PeerVerifier {
    return this.#verifier;
  }

  get text(): string {
    return this.#text;
  }

  /** Re-reads the file now; resolves to whether the measurements changed. */
  async reload(): Promise<boolean> {
    let bytes: Buffer;
    let mac: Buffer;
    try {
      bytes = await readFile(this.path);
    } catch (err) {
      this.log.error(`measurements reload: cannot read ${this.path}: ${(err as Error).message}`);
      return false;
    }
    const text = bytes.toString('utf8');
    if (text === this.#text) return false;
    try {
      mac = await readFile(macPathOf(this.path)).catch((err: NodeJS.ErrnoException) => {
        throw new Error(
          `${this.path}: no MAC beside it (${macPathOf(this.path)}: ${err.code ?? 'unreadable'})`,
        );
      });
      checkMeasurementsMac(bytes, mac, this.macKey, this.path);
      const serial = measurementsSerial(text, this.path);
      if (serial <= this.#serial) {
        throw new Error(
          `${this.path}: serial ${serial} is not above the serial ${this.#serial} in use (an earlier measurements file and MAC put back, or a new one without a higher serial)`,
        );
      }
      this.#verifier = this.makeVerifier(text);
      this.#serial = serial;
    } catch (err) {
      this.log.error(`measurements reload refused, keeping the current ones: ${(err as Error).message}`);
      return false;
    }
    this.#text = text;
    this.log.info('measurements reloaded', { path: this.path });
    return true;
  }

  /**
   * Watches the directory (file and MAC): an atomic replace (rename) swaps the inode a file watch would follow.
   */
  watch(): void {
    if (this.#watcher) return;
    const names = [basename(this.path), basename(macPathOf(this.path))];
    this.#watcher = watch(dirname(this.path), (_event, file) => {
      if (file !== null && !names.includes(file)) return;
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = setTimeout(() => void this.reload(), 100);
    });
  }

  close(): void {
    this.#watcher?.close();
    this.#watcher = null;
    if (this.#timer) clearTimeout(this.#timer);
  }
}
