// Measurements documents told apart only by their release serial, and a fake verifier that says which one it was
// made from: what the JoinService's measurements reload and floor tests publish and read back.
import { writeFile } from 'node:fs/promises';
import type { PeerVerifier } from '../../../attestation/atls/index.js';
import {
  formatMeasurementsFile,
  measurementsMac,
  measurementsSerial,
} from '../../../attestation/measurements.js';

/** A measurements document of release serial `serial` (its PCR values are no concern here). */
export function serialDoc(serial: number): string {
  return formatMeasurementsFile(
    { 4: { expected: '04'.repeat(32), warnOnly: false } },
    { version: `img-${serial}`, serial },
  );
}

/** A verifier whose challenge answers `{ serial }` of the document it was made from. */
export function serialVerifier(text: string): PeerVerifier {
  const serial = measurementsSerial(text);
  return { challenge: async () => ({ serial }) as never };
}

/** The serial of the document `source` serves now. */
export async function servedSerial(source: { current(): PeerVerifier }): Promise<number> {
  return ((await source.current().challenge({} as never)) as unknown as { serial: number }).serial;
}

/** Writes a measurements file the way an operator's upgrade lands: its MAC under the cluster key first. */
export async function publishMeasurements(
  file: string,
  text: string,
  key: Buffer,
  macFile = `${file}.mac`,
): Promise<void> {
  await writeFile(macFile, measurementsMac(key, Buffer.from(text)));
  await writeFile(file, text);
}
