import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { createPeerVerifier, type PeerVerifier } from '../../attestation/atls/index.js';
import type { Trust } from '../../attestation/ek-chain.js';
import { enforceMeasurementPolicy } from '../../attestation/measurement-policy.js';
import {
  checkMeasurementsMac,
  type Measurements,
  measurementsMac,
  measurementsSerial,
  parseMeasurementsFile,
} from '../../attestation/measurements.js';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { deriveMeasurementsMacKey, type MasterSecret } from '../../common/keys.js';
import { statePath } from '../lifecycle/layout.js';
import type { Logger } from '../log/index.js';
import { SerialFloor } from './serial-floor.js';

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
    /** Where the highest serial taken is kept across restarts; raised before a reload takes a new document. */
    private readonly floor?: SerialFloor,
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
      const verifier = this.makeVerifier(text);
      await this.floor?.raise(serial);
      this.#verifier = verifier;
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

/** The (file, MAC) pair in the state directory, if both are there and the MAC verifies; why not, otherwise. */
async function publishedMeasurements(
  path: string,
  macKey: Uint8Array,
): Promise<{ text: string; serial: number } | { refused: string } | undefined> {
  const bytes = await readFile(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!bytes) return undefined;
  try {
    const mac = await readFile(macPathOf(path));
    checkMeasurementsMac(bytes, mac, macKey, path);
    const text = bytes.toString('utf8');
    return { text, serial: measurementsSerial(text, path) };
  } catch (err) {
    return { refused: (err as Error).message };
  }
}

export interface MeasurementsSetup {
  stateDir: string;
  /** The measurements the cluster secrets carry (from the attested init channel or a control-plane ticket). */
  shipped: string;
  makeVerifier: (measurements: string) => PeerVerifier;
  log: Logger;
  macKey: Uint8Array;
}

/**
 * The measurements a (re)starting JoinService runs with: the higher-serial of the cluster secrets' copy and the
 * (file, MAC) pair an upgrade left in the state directory, never below the persisted floor — an earlier pair put
 * back while the agent was down is refused after the restart as it is while it runs. Writes the chosen document,
 * its MAC and the floor before anything is served; throws, serving nothing, when nothing at or above the floor is
 * left or the floor itself was removed or edited.
 */
export async function openMeasurementsSource(setup: MeasurementsSetup): Promise<MeasurementsSource> {
  const path = statePath(setup.stateDir, 'measurements');
  const floor = await SerialFloor.open(
    statePath(setup.stateDir, 'measurementsFloor'),
    'measurements',
    setup.macKey,
  );
  const published = await publishedMeasurements(path, setup.macKey);
  if (published && !floor.exists) {
    throw new Error(
      `${floor.path}: the measurements serial floor is missing beside ${path}: refusing to start the JoinService below a serial it no longer knows (restore the file or re-publish the measurements)`,
    );
  }
  const candidates = [
    { text: setup.shipped, serial: measurementsSerial(setup.shipped, 'cluster secrets: measurements') },
  ];
  if (published && 'refused' in published) {
    setup.log.error(`measurements in the state directory ignored: ${published.refused}`);
  } else if (published) candidates.push(published);
  const chosen = candidates.reduce((a, b) => (b.serial > a.serial ? b : a));
  if (chosen.serial < floor.serial) {
    throw new Error(
      `${path}: measurements serial ${chosen.serial} is below the serial ${floor.serial} this JoinService has accepted (${floor.path}): refusing to serve joins with older measurements`,
    );
  }
  // parsed and held to the policy before the floor moves
  const source = new MeasurementsSource(
    path,
    chosen.text,
    setup.makeVerifier,
    setup.log,
    setup.macKey,
    floor,
  );
  await floor.raise(chosen.serial);
  if (published === undefined || 'refused' in published || published.text !== chosen.text) {
    // the MAC first: a crash between the two leaves a pair that does not verify, which the next start ignores
    await writeFileAtomic(macPathOf(path), measurementsMac(setup.macKey, Buffer.from(chosen.text)), {
      mode: 0o600,
    });
    await writeFileAtomic(path, chosen.text);
  }
  return source;
}

/**
 * The measurements a cluster's JoinService admits nodes against. They came over the attested init channel (or a
 * control-plane ticket), so a later replacement is authenticated with the MAC key derived from the master secret:
 * it counts only when whoever wrote it holds the master secret too. Each verifier is never weaker than the boot
 * chain (admissionMeasurements).
 */
export function openClusterMeasurements(cluster: {
  stateDir: string;
  masterSecret: MasterSecret;
  shipped: string;
  trust: Trust;
  variant: string;
  log: Logger;
}): Promise<MeasurementsSource> {
  const where = statePath(cluster.stateDir, 'measurements');
  return openMeasurementsSource({
    stateDir: cluster.stateDir,
    shipped: cluster.shipped,
    makeVerifier: (text) =>
      createPeerVerifier({
        trust: cluster.trust,
        measurements: admissionMeasurements(text, where),
        variant: cluster.variant,
      }),
    log: cluster.log,
    macKey: deriveMeasurementsMacKey(cluster.masterSecret),
  });
}
