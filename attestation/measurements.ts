import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  KeyObject,
  sign,
  timingSafeEqual,
  verify,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { clusterPcrValue } from '../common/cluster-pcr.js';
import { AttestationError } from './errors.js';

/** What one PCR must hold. `expected` is 64 lowercase hex characters (a SHA-256 PCR value). */
export interface Measurement {
  expected: string;
  warnOnly: boolean;
}

/** PCR index (0–23) → expected value. */
export type Measurements = Record<number, Measurement>;

const HEX64 = /^[0-9a-fA-F]{64}$/;

function configError(message: string): AttestationError {
  return new AttestationError('config', message);
}

/**
 * Validates a measurements map (the value of "measurements" in a measurements file). Errors name the key and the
 * field that is wrong. Hex is normalised to lowercase.
 */
export function parseMeasurements(value: unknown, where = 'measurements'): Measurements {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw configError(`${where}: expected an object mapping PCR index to {expected, warnOnly}`);
  }
  const out: Measurements = {};
  for (const [key, entry] of Object.entries(value as Record<string, unknown>)) {
    const at = `${where}[${JSON.stringify(key)}]`;
    if (!/^(0|[1-9][0-9]?)$/.test(key) || Number(key) > 23) {
      throw configError(`${at}: key must be a PCR index 0-23`);
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw configError(`${at}: expected an object {expected, warnOnly}`);
    }
    const { expected, warnOnly, ...rest } = entry as Record<string, unknown>;
    const unknown = Object.keys(rest);
    if (unknown.length > 0) throw configError(`${at}: unknown field(s) ${unknown.join(', ')}`);
    if (typeof expected !== 'string' || !HEX64.test(expected)) {
      throw configError(`${at}.expected: expected 64 hex characters (a SHA-256 PCR value)`);
    }
    if (warnOnly !== undefined && typeof warnOnly !== 'boolean') {
      throw configError(`${at}.warnOnly: expected a boolean`);
    }
    out[Number(key)] = { expected: expected.toLowerCase(), warnOnly: warnOnly ?? false };
  }
  return out;
}

/** Parses measurements file bytes: JSON `{"measurements": {...}}`. */
export function parseMeasurementsFile(bytes: Buffer | string, where = 'measurements file'): Measurements {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString());
  } catch (err) {
    throw configError(`${where}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || !('measurements' in doc)) {
    throw configError(`${where}: expected a JSON object with a "measurements" field`);
  }
  return parseMeasurements((doc as { measurements: unknown }).measurements, `${where}: measurements`);
}

/** Serialises measurements in the file format, PCRs in ascending order. */
export function formatMeasurementsFile(measurements: Measurements): string {
  const sorted: Record<string, Measurement> = {};
  for (const pcr of Object.keys(measurements)
    .map(Number)
    .sort((a, b) => a - b)) {
    const m = measurements[pcr]!;
    sorted[String(pcr)] = { expected: m.expected, warnOnly: m.warnOnly };
  }
  return `${JSON.stringify({ measurements: sorted }, null, 2)}\n`;
}

type KeyInput = KeyObject | string | Buffer;

/** The digest argument node:crypto wants for the key: Ed25519 signs the message itself, P-256 with SHA-256. */
function algorithmFor(key: KeyObject, role: string): string | null {
  if (key.asymmetricKeyType === 'ed25519') return null;
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')
    return 'sha256';
  throw configError(
    `${role}: expected an Ed25519 or ECDSA P-256 key, got ${key.asymmetricKeyType}${
      key.asymmetricKeyDetails?.namedCurve ? ` (${key.asymmetricKeyDetails.namedCurve})` : ''
    }`,
  );
}

/**
 * Signs measurements file bytes (the exact bytes that will be shipped). The detached signature is raw: 64 bytes for
 * Ed25519, DER for ECDSA P-256. For release tooling and tests.
 */
export function signMeasurements(fileBytes: Buffer, privateKey: KeyInput): Buffer {
  const key = privateKey instanceof KeyObject ? privateKey : createPrivateKey(privateKey);
  return sign(algorithmFor(key, 'signing key'), fileBytes, key);
}

/** Checks the detached signature over the raw file bytes, then parses them. Nothing is used before the check. */
export function verifyMeasurementsFile(
  fileBytes: Buffer,
  signature: Buffer,
  publicKey: KeyInput,
  where = 'measurements file',
): Measurements {
  const key = publicKey instanceof KeyObject ? publicKey : createPublicKey(publicKey);
  const algo = algorithmFor(key, 'measurements public key');
  let ok = false;
  try {
    ok = verify(algo, fileBytes, key, signature);
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new AttestationError(
      'measurements',
      `${where}: signature does not verify against the configured measurements public key (file or signature altered, or signed by another key)`,
    );
  }
  return parseMeasurementsFile(fileBytes, where);
}

export interface LoadMeasurementsOptions {
  /** Public key (PEM, DER SPKI or KeyObject) the file must be signed with. Required unless `allowUnsigned`. */
  publicKey?: KeyInput;
  /** Detached signature path; defaults to `<path>.sig`. */
  signaturePath?: string;
  /** Accept an unsigned file (development only). */
  allowUnsigned?: boolean;
}

/** Reads a measurements file and, unless explicitly allowed unsigned, its detached signature. */
export async function loadMeasurementsFile(
  path: string,
  options: LoadMeasurementsOptions = {},
): Promise<Measurements> {
  const bytes = await readFile(path);
  if (!options.publicKey) {
    if (!options.allowUnsigned) {
      throw configError(
        `${path}: no measurements public key configured; refusing an unverified measurements file`,
      );
    }
    return parseMeasurementsFile(bytes, path);
  }
  const sigPath = options.signaturePath ?? `${path}.sig`;
  let signature: Buffer;
  try {
    signature = await readFile(sigPath);
  } catch (err) {
    throw new AttestationError(
      'measurements',
      `${path}: cannot read detached signature ${sigPath} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  return verifyMeasurementsFile(bytes, signature, options.publicKey, path);
}

/**
 * PCR 15 after extending a 32-byte cluster ID into a zero PCR: SHA-256(zeros32 ‖ clusterId), hex. The node extends
 * PCR 15 once with the cluster ID, so this is its expected value.
 */
export function pcr15ForClusterId(clusterId: Buffer): string {
  return clusterPcrValue(clusterId).toString('hex');
}

/** HMAC-SHA256 of a measurements file's bytes under a key only the cluster holds (common/keys.ts). */
export function measurementsMac(key: Uint8Array, fileBytes: Uint8Array): Buffer {
  return createHmac('sha256', key).update(fileBytes).digest();
}

/**
 * Checks the MAC over the exact bytes: a file whose MAC does not verify (hand-edited on disk, or made without the
 * cluster's key) must not be used at all. Constant-time.
 */
export function checkMeasurementsMac(
  fileBytes: Buffer,
  mac: Buffer,
  key: Uint8Array,
  where = 'measurements file',
): void {
  const expected = measurementsMac(key, fileBytes);
  if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) {
    throw new AttestationError(
      'measurements',
      `${where}: its MAC does not verify with the cluster's measurements key (edited, or not made by the operator)`,
    );
  }
}
