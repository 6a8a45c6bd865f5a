import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { PeerVerifier } from '../../attestation/atls/index.js';
import { checkMeasurementsMac } from '../../attestation/measurements.js';
import type { Logger } from '../log/index.js';

/** Where a measurements file's MAC lives: beside it, 32 raw bytes. */
function macPathOf(path: string): string {
  return `${path}.mac`;
}

/**
 * The measurements the JoinService admits nodes against, reloaded when their file changes (an upgrade ships new
 * ones). A replaced file counts only when its MAC (`<file>.mac`, HMAC-SHA256 under the key derived from the master
 * secret) verifies: a file edited on a control plane's disk changes nothing. A join in flight keeps the verifier it
 * started with; a bad new file is refused and the old one stays.
 */
export class MeasurementsSource {
  #verifier: PeerVerifier;
  #text: string;
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
    this.#verifier = makeVerifier(text);
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
      this.#verifier = this.makeVerifier(text);
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
