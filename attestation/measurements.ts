import {
  createHash,
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

/**
 * What a measurements file says about itself. A release signs `version` (the image the measurements are of) and a
 * `serial` that only grows, so an older signed copy is refusable; `expires` (RFC 3339) ends a document's use.
 */
export interface MeasurementsDocument {
  version?: string;
  serial?: number;
  expires?: string;
  measurements: Measurements;
}

/** A document a release key signed: version and serial are required there. */
export interface SignedMeasurements extends MeasurementsDocument {
  version: string;
  serial: number;
}

/** Keys a measurements file may carry beside `measurements` (`image`, `source`: what the reference boot notes). */
const DOCUMENT_KEYS = new Set(['measurements', 'version', 'serial', 'expires', 'image', 'source']);
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Parses measurements file bytes: JSON `{"measurements": {...}, "version"?, "serial"?, "expires"?}`. */
export function parseMeasurementsDocument(
  bytes: Buffer | string,
  where = 'measurements file',
): MeasurementsDocument {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString());
  } catch (err) {
    throw configError(`${where}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || !('measurements' in doc)) {
    throw configError(`${where}: expected a JSON object with a "measurements" field`);
  }
  const fields = doc as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => !DOCUMENT_KEYS.has(k));
  if (unknown.length > 0) throw configError(`${where}: unknown field(s) ${unknown.join(', ')}`);
  const out: MeasurementsDocument = {
    measurements: parseMeasurements(fields.measurements, `${where}: measurements`),
  };
  const { version, serial, expires } = fields;
  if (version !== undefined) {
    if (typeof version !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(version)) {
      throw configError(`${where}: version: expected the image version (1-128 printable characters)`);
    }
    out.version = version;
  }
  if (serial !== undefined) {
    if (typeof serial !== 'number' || !Number.isSafeInteger(serial) || serial < 1) {
      throw configError(`${where}: serial: expected a positive integer, got ${JSON.stringify(serial)}`);
    }
    out.serial = serial;
  }
  if (expires !== undefined) {
    if (typeof expires !== 'string' || !RFC3339.test(expires) || Number.isNaN(Date.parse(expires))) {
      throw configError(`${where}: expires: expected an RFC 3339 time like 2027-01-31T00:00:00Z`);
    }
    out.expires = expires;
  }
  return out;
}

/** Parses measurements file bytes: JSON `{"measurements": {...}}`; the PCR values only. */
export function parseMeasurementsFile(bytes: Buffer | string, where = 'measurements file'): Measurements {
  return parseMeasurementsDocument(bytes, where).measurements;
}

/** The serial a measurements text carries; 0 when it carries none (inline measurements, tests). */
export function measurementsSerial(bytes: Buffer | string, where = 'measurements file'): number {
  return parseMeasurementsDocument(bytes, where).serial ?? 0;
}

/** SHA-256 of the key's SPKI, `sha256:<hex>`: what an operator compares with the release's published fingerprint. */
export function releaseKeyFingerprint(publicKey: KeyInput): string {
  const key = publicKey instanceof KeyObject ? publicKey : createPublicKey(publicKey);
  const spki = key.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/** Serialises measurements in the file format, PCRs in ascending order, after the release's version and serial. */
export function formatMeasurementsFile(
  measurements: Measurements,
  release: Omit<MeasurementsDocument, 'measurements'> = {},
): string {
  const sorted: Record<string, Measurement> = {};
  for (const pcr of Object.keys(measurements)
    .map(Number)
    .sort((a, b) => a - b)) {
    const m = measurements[pcr]!;
    sorted[String(pcr)] = { expected: m.expected, warnOnly: m.warnOnly };
  }
  const { version, serial, expires } = release;
  const head = {
    ...(version !== undefined ? { version } : {}),
    ...(serial !== undefined ? { serial } : {}),
    ...(expires !== undefined ? { expires } : {}),
  };
  return `${JSON.stringify({ ...head, measurements: sorted }, null, 2)}\n`;
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

/**
 * Checks the detached signature over the raw file bytes, then parses them. Nothing is used before the check. A
 * signed document must say which image it is of and its serial, and is refused once expired.
 */
export function verifyMeasurementsFile(
  fileBytes: Buffer,
  signature: Buffer,
  publicKey: KeyInput,
  where = 'measurements file',
  now: Date = new Date(),
): SignedMeasurements {
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
  const doc = parseMeasurementsDocument(fileBytes, where);
  for (const field of ['version', 'serial'] as const) {
    if (doc[field] === undefined) {
      throw new AttestationError(
        'measurements',
        `${where}: ${field}: missing; a signed measurements document must carry the image version and its serial (re-sign it with scripts/image-measurements.sh)`,
      );
    }
  }
  if (doc.expires !== undefined && Date.parse(doc.expires) <= now.getTime()) {
    throw new AttestationError(
      'measurements',
      `${where}: expires: the document (version ${doc.version}, serial ${doc.serial}) expired at ${doc.expires}`,
    );
  }
  return doc as SignedMeasurements;
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
): Promise<MeasurementsDocument> {
  const bytes = await readFile(path);
  if (!options.publicKey) {
    if (!options.allowUnsigned) {
      throw configError(
        `${path}: no measurements public key configured; refusing an unverified measurements file`,
      );
    }
    return parseMeasurementsDocument(bytes, path);
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
