// Test harness: an operator workspace whose config pins signed measurements, as `config generate` leaves it, for
// the unit tier (no swtpm, no namespace: the EK CA files are whatever the caller passes).
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  formatMeasurementsFile,
  type Measurements,
  type MeasurementsDocument,
  releaseKeyFingerprint,
  signMeasurements,
} from '../../attestation/measurements.js';
import { defaultQemuConfig, type SextantConfig } from '../../cli/config/schema.js';
import { everyRequiredPcr } from '../attestation/required-pcrs.js';

export interface ReleaseKey {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

export interface SignedWorkspaceOptions {
  /** The table signed; every required PCR enforced unless given. */
  measurements?: Measurements;
  /** The release's version and serial in the document; `{ version: 'v-test', serial: 1 }` unless given. */
  doc?: Omit<MeasurementsDocument, 'measurements'>;
  /** The release key; a new Ed25519 pair unless given. */
  release?: ReleaseKey;
  /** Signs the document instead of the release key. */
  signer?: KeyObject;
  /** Written as the workspace's key file instead of the release key. */
  keyFile?: KeyObject;
  /** What the config pins; the document's serial and the release key unless given. */
  pin?: { serial: number; key: KeyObject };
  /** EK CA certificates, file name → PEM, written and listed in the config; the default config's list unless given. */
  ekCa?: Record<string, string>;
}

export interface SignedWorkspace {
  dir: string;
  /** The config pointing at the files written; not saved, so a caller can change it before `saveConfig`. */
  config: SextantConfig;
  release: ReleaseKey;
}

/** Writes measurements.json, its signature and the release key into `dir`, and a config that pins them. */
export async function writeSignedWorkspace(
  dir: string,
  options: SignedWorkspaceOptions = {},
): Promise<SignedWorkspace> {
  const release = options.release ?? generateKeyPairSync('ed25519');
  const doc = options.doc ?? { version: 'v-test', serial: 1 };
  const bytes = Buffer.from(formatMeasurementsFile(options.measurements ?? everyRequiredPcr(), doc));
  await writeFile(join(dir, 'measurements.json'), bytes);
  await writeFile(
    join(dir, 'measurements.json.sig'),
    signMeasurements(bytes, options.signer ?? release.privateKey),
  );
  await writeFile(
    join(dir, 'measurements-key.pem'),
    (options.keyFile ?? release.publicKey).export({ type: 'spki', format: 'pem' }),
  );
  for (const [name, pem] of Object.entries(options.ekCa ?? {})) await writeFile(join(dir, name), pem);
  const config = defaultQemuConfig();
  // signed files replace the default's inline table: a config holds one or the other
  const { measurements: _inline, ...attestation } = config.attestation;
  config.attestation = {
    ...attestation,
    measurementsFile: 'measurements.json',
    measurementsSignature: 'measurements.json.sig',
    measurementsPublicKey: 'measurements-key.pem',
    measurementsKeyFingerprint: releaseKeyFingerprint(options.pin?.key ?? release.publicKey),
    measurementsSerial: options.pin?.serial ?? doc.serial ?? 1,
    ...(options.ekCa ? { ekCaCertificates: Object.keys(options.ekCa) } : {}),
  };
  return { dir, config, release };
}
