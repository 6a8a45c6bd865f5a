import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { PeerVerifier } from '../../attestation/atls/index.js';
import type { Logger } from '../log/index.js';

/**
 * The measurements the JoinService admits nodes against, reloaded when their file changes (an upgrade ships new
 * ones). A join in flight keeps the verifier it started with; a bad new file is refused and the old one stays.
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
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      this.log.error(`measurements reload: cannot read ${this.path}: ${(err as Error).message}`);
      return false;
    }
    if (text === this.#text) return false;
    try {
      this.#verifier = this.makeVerifier(text);
    } catch (err) {
      this.log.error(`measurements reload refused, keeping the current ones: ${(err as Error).message}`);
      return false;
    }
    this.#text = text;
    this.log.info('measurements reloaded', { path: this.path });
    return true;
  }

  /** Watches the directory: an atomic replace (rename) swaps the inode a file watch would follow. */
  watch(): void {
    if (this.#watcher) return;
    const name = basename(this.path);
    this.#watcher = watch(dirname(this.path), (_event, file) => {
      if (file !== null && file !== name) return;
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
