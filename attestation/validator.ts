import { constants, createHash, verify } from 'node:crypto';
import { secretsEqual } from '../common/secrets.js';
import type { AttestationDocument } from '../gen/proto/attestation.js';
import { type ExpectedChallenge, identityKeys } from './challenge.js';
import type { Trust } from './ek-chain.js';
import { AttestationError, ParseError } from './errors.js';
import {
  describeEventChecked,
  type EventLog,
  eventDataVerified,
  eventsForPcr,
  parseEventLog,
  replayEventLog,
} from './event-log.js';
import { clearPublicKeyCache } from './key-cache.js';
import type { Measurement, Measurements } from './measurements.js';
import {
  curveSize,
  hashAlgorithm,
  parseTpmsAttest,
  parseTpmtSignature,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_QUOTE,
  type TpmPublic,
  type TpmsAttest,
  type TpmtSignature,
} from './tpm-structures.js';

export const DOCUMENT_VERSION = 1;
export const PCR_COUNT = 24;
const PCR_SIZE = 32;

export interface ValidateOptions {
  /** from createChallenge; single use */
  expected: ExpectedChallenge;
  /** the data the document must be bound to (e.g. the TLS key of the channel) */
  userData: Buffer;
  measurements: Measurements;
  trust: Trust;
  /** the only variant this verifier accepts, e.g. 'qemu-vtpm' */
  variant: string;
}

export interface ValidationResult {
  /** warnOnly measurement mismatches, one line each */
  warnings: string[];
  /** the quoted SHA-256 PCR values, 0–23 */
  pcrs: Map<number, Buffer>;
  /** AK name: a stable identity of the attesting TPM */
  akName: Buffer;
  /** SHA-256 of the EK certificate DER */
  ekCertificateHash: Buffer;
  /** SHA-256 of the EK's SubjectPublicKeyInfo DER: the TPM's identity, whatever AK or certificate it presents */
  ekPublicHash: Buffer;
}

/** An event explaining a PCR, as named in a measurement mismatch. */
export interface ExplainingEvent {
  index: number;
  offset: number;
  type: string;
  sha256: string;
  /** what the event data says; prefixed "unverified event data: " when no digest covers the data */
  description: string;
  /** whether the event's SHA-256 digest is the hash of its data (so the replayed quote vouches for it) */
  dataVerified: boolean;
}

export interface PcrMismatch {
  pcr: number;
  expected: string;
  actual: string;
  warnOnly: boolean;
  /** events of the boot log that extended this PCR (empty when the document has no log or none touch it) */
  events: ExplainingEvent[];
}

// ---- event log cache: parsing and replaying is deterministic in the log bytes -------------------------------------
interface ReplayedLog {
  log: EventLog;
  replay: Map<number, Buffer>;
}
const LOG_CACHE_LIMIT = 256;
const logCache = new Map<string, ReplayedLog | AttestationError>();

function replayedLog(bytes: Buffer): ReplayedLog {
  const key = createHash('sha256').update(bytes).digest('base64');
  const hit = logCache.get(key);
  if (hit instanceof AttestationError) throw hit;
  if (hit) return hit;
  let result: ReplayedLog | AttestationError;
  try {
    const log = parseEventLog(bytes);
    result = { log, replay: replayEventLog(log, TPM_ALG.SHA256) };
  } catch (err) {
    if (!(err instanceof ParseError || err instanceof RangeError)) throw err;
    result = new AttestationError('event-log', `event log is malformed: ${err.message}`);
  }
  if (logCache.size >= LOG_CACHE_LIMIT) logCache.clear();
  logCache.set(key, result);
  if (result instanceof AttestationError) throw result;
  return result;
}

/**
 * Drops every cached parse and verdict (AK/EK keys, event log replays and, given a Trust, its EK chain verdicts),
 * e.g. after rotating trust anchors, or to measure the cold path.
 */
export function clearValidationCaches(trust?: Trust): void {
  clearPublicKeyCache();
  logCache.clear();
  trust?.ekChainCache.clear();
}

function fail(check: AttestationError['check'], message: string, details?: Record<string, unknown>): never {
  throw new AttestationError(check, message, details);
}

function checkSignature(ak: TpmPublic, quote: Buffer, signature: Buffer): void {
  let sig: TpmtSignature;
  try {
    sig = parseTpmtSignature(signature, curveSize(ak));
  } catch (err) {
    if (err instanceof ParseError || err instanceof RangeError) fail('signature', err.message);
    throw err;
  }
  const hash = hashAlgorithm(sig.hashAlg);
  if (!hash || sig.hashAlg === TPM_ALG.SHA1) {
    fail(
      'signature',
      `signature hash algorithm 0x${sig.hashAlg.toString(16)} is not accepted (SHA-256/384/512)`,
    );
  }
  let ok: boolean;
  if (sig.sigAlg === TPM_ALG.ECDSA && ak.type === 'ecc') {
    ok = verify(hash.name, quote, { key: ak.key, dsaEncoding: 'ieee-p1363' }, sig.signature);
  } else if (sig.sigAlg === TPM_ALG.RSASSA && ak.type === 'rsa') {
    ok = verify(hash.name, quote, ak.key, sig.signature);
  } else if (sig.sigAlg === TPM_ALG.RSAPSS && ak.type === 'rsa') {
    ok = verify(
      hash.name,
      quote,
      { key: ak.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO },
      sig.signature,
    );
  } else {
    fail('signature', `signature algorithm 0x${sig.sigAlg.toString(16)} does not match the ${ak.type} AK`);
  }
  if (!ok) fail('signature', 'the quote signature does not verify with the AK (quote or signature altered)');
}

function checkPcrDigest(attest: TpmsAttest, docPcrs: AttestationDocument['pcrs']): Map<number, Buffer> {
  const quote = attest.quote!;
  const order: number[] = [];
  for (const sel of quote.pcrSelect) {
    if (sel.hashAlg !== TPM_ALG.SHA256) {
      fail(
        'pcr-digest',
        `quote selects PCR bank 0x${sel.hashAlg.toString(16)}; only SHA-256 PCRs are accepted`,
      );
    }
    order.push(...sel.pcrs);
  }
  const covered = new Set(order);
  for (let i = 0; i < PCR_COUNT; i++) {
    if (!covered.has(i))
      fail('pcr-digest', `quote does not cover PCR ${i}; all SHA-256 PCRs 0-23 must be quoted`);
  }
  if (order.length !== PCR_COUNT || covered.size !== PCR_COUNT) {
    fail('pcr-digest', `quote selects ${order.length} PCRs; expected exactly SHA-256 PCRs 0-23`);
  }
  const pcrs = new Map<number, Buffer>();
  const h = createHash('sha256');
  for (const i of order) {
    const v = docPcrs[i];
    if (!v || v.length !== PCR_SIZE) {
      fail(
        'pcr-digest',
        `reported PCR ${i} is ${v ? `${v.length} bytes` : 'missing'}; expected ${PCR_SIZE} bytes`,
      );
    }
    pcrs.set(i, v);
    h.update(v);
  }
  for (const k in docPcrs) {
    if (!pcrs.has(Number(k))) fail('pcr-digest', `document reports PCR ${k}, which the quote does not cover`);
  }
  const digest = h.digest();
  if (!digest.equals(quote.pcrDigest)) {
    fail(
      'pcr-digest',
      'the quoted PCR digest does not equal the SHA-256 of the reported PCR values (a value altered)',
    );
  }
  return pcrs;
}

function checkEventLog(bytes: Buffer, pcrs: Map<number, Buffer>): EventLog | undefined {
  if (bytes.length === 0) return undefined;
  const { log, replay } = replayedLog(bytes);
  for (const [pcr, value] of replay) {
    const reported = pcrs.get(pcr);
    if (!reported) fail('event-log', `event log extends PCR ${pcr}, which is not among the quoted PCRs 0-23`);
    if (!value.equals(reported)) {
      fail(
        'event-log',
        `event log replays PCR ${pcr} to ${value.toString('hex')} but the quote reports ${reported.toString('hex')} (log altered or incomplete)`,
        { pcr, replayed: value.toString('hex'), reported: reported.toString('hex') },
      );
    }
  }
  return log;
}

const MAX_EVENTS_NAMED = 8;

function explain(log: EventLog | undefined, pcr: number): { events: ExplainingEvent[]; text: string } {
  if (!log) return { events: [], text: 'no event log in the document' };
  const events = eventsForPcr(log, pcr).map((ev) => ({
    index: ev.index,
    offset: ev.offset,
    type: ev.typeName,
    sha256: ev.digests.get(TPM_ALG.SHA256)?.toString('hex') ?? '',
    description: describeEventChecked(ev),
    dataVerified: eventDataVerified(ev),
  }));
  if (events.length === 0) {
    return {
      events,
      text: `no boot log event extends PCR ${pcr} (it was extended after boot, or not at all)`,
    };
  }
  const named = events
    .slice(0, MAX_EVENTS_NAMED)
    .map((e) => `#${e.index} ${e.type} sha256:${e.sha256} (${e.description})`);
  const more = events.length > MAX_EVENTS_NAMED ? `; and ${events.length - MAX_EVENTS_NAMED} more` : '';
  return { events, text: `event(s) extending PCR ${pcr}: ${named.join('; ')}${more}` };
}

// Measurements are long-lived policy objects; decoding their hex once per object keeps the hot path to memcmp.
const expectedBytesCache = new WeakMap<Measurement, { hex: string; bytes: Buffer }>();
function expectedBytes(m: Measurement): Buffer {
  const hit = expectedBytesCache.get(m);
  if (hit && hit.hex === m.expected) return hit.bytes;
  const bytes = Buffer.from(m.expected, 'hex');
  expectedBytesCache.set(m, { hex: m.expected, bytes });
  return bytes;
}

function checkMeasurements(
  measurements: Measurements,
  pcrs: Map<number, Buffer>,
  log: EventLog | undefined,
): string[] {
  const warnings: string[] = [];
  const enforced: PcrMismatch[] = [];
  const lines: string[] = [];
  for (const key in measurements) {
    const pcr = Number(key);
    const m = measurements[pcr]!;
    const value = pcrs.get(pcr);
    if (value === undefined) fail('measurements', `PCR ${pcr} has a measurement but was not quoted`);
    if (value.equals(expectedBytes(m))) continue;
    const actual = value.toString('hex');
    const { events, text } = explain(log, pcr);
    const line = `PCR ${pcr}: expected ${m.expected}, actual ${actual}; ${text}`;
    if (m.warnOnly) {
      warnings.push(`warnOnly ${line}`);
    } else {
      enforced.push({ pcr, expected: m.expected, actual, warnOnly: false, events });
      lines.push(line);
    }
  }
  if (enforced.length > 0) {
    fail('measurements', `${enforced.length} enforced PCR(s) differ: ${lines.join(' | ')}`, {
      mismatches: enforced,
    });
  }
  return warnings;
}

/**
 * Validates an attestation document against the challenge it answers. Checks, in order: variant, version, AK
 * trust (EK chain, identity = challenged identity, credential secret), quote signature, TPMS_ATTEST magic/type,
 * extra data = SHA-256(userData ‖ nonce), PCR selection and digest, event log replay, measurements. The first
 * failure throws an AttestationError whose `check` names it.
 */
export function validateDocument(doc: AttestationDocument, options: ValidateOptions): ValidationResult {
  const { expected, userData, measurements, trust, variant } = options;

  if (doc.variant !== variant) {
    fail(
      'variant',
      `document is for variant ${JSON.stringify(doc.variant)}; this verifier accepts ${JSON.stringify(variant)}`,
    );
  }
  if (expected.identity.variant !== variant) {
    fail(
      'variant',
      `challenged identity is variant ${JSON.stringify(expected.identity.variant)}, not ${JSON.stringify(variant)}`,
    );
  }
  if (doc.version !== DOCUMENT_VERSION) {
    fail(
      'version',
      `document encoding version ${doc.version}; this verifier reads version ${DOCUMENT_VERSION}`,
    );
  }

  // AK trust: the document must come from the identity that was challenged, whose EK chains to a trusted CA, and
  // must carry back the secret only that TPM (EK + this AK) could unwrap.
  if (!doc.ekCertificate.equals(expected.identity.ekCertificate)) {
    fail('ak-trust', 'ek_certificate differs from the one that was challenged');
  }
  if (!doc.ekPublic.equals(expected.identity.ekPublic)) {
    fail('ak-trust', 'ek_public differs from the one that was challenged');
  }
  if (!doc.akPublic.equals(expected.identity.akPublic)) {
    fail('ak-trust', 'ak_public differs from the one that was challenged');
  }
  const { ek, ak, ekCertificateHash } = identityKeys(expected.identity, trust);
  if (!secretsEqual(doc.credentialSecret, expected.secret)) {
    fail(
      'ak-trust',
      'credential_secret does not match the challenge: the AK is not bound to the certified EK (credential not activated by that TPM for this AK)',
    );
  }

  checkSignature(ak, doc.quote, doc.signature);

  let attest: TpmsAttest;
  try {
    attest = parseTpmsAttest(doc.quote);
  } catch (err) {
    if (err instanceof ParseError) fail('attest-structure', err.message);
    throw err;
  }
  if (attest.magic !== TPM_GENERATED_VALUE) {
    fail(
      'attest-structure',
      `TPMS_ATTEST magic 0x${attest.magic.toString(16)}; expected 0xff544347 (TPM_GENERATED)`,
    );
  }
  if (attest.type !== TPM_ST_ATTEST_QUOTE || !attest.quote) {
    fail(
      'attest-structure',
      `TPMS_ATTEST type 0x${attest.type.toString(16)}; expected 0x8018 (TPM_ST_ATTEST_QUOTE)`,
    );
  }

  const extra = createHash('sha256').update(userData).update(expected.nonce).digest();
  if (!extra.equals(attest.extraData)) {
    fail(
      'extra-data',
      'quote extra data is not SHA-256(user data ‖ nonce): the document answers another nonce or is bound to other user data (replayed or relayed)',
    );
  }
  if (!doc.userData.equals(userData)) {
    fail('extra-data', 'document user_data differs from the user data the verifier expects');
  }

  const pcrs = checkPcrDigest(attest, doc.pcrs);
  const log = checkEventLog(doc.eventLog, pcrs);
  const warnings = checkMeasurements(measurements, pcrs, log);

  return {
    warnings,
    pcrs,
    akName: ak.name,
    ekCertificateHash,
    ekPublicHash: createHash('sha256')
      .update(ek.key.export({ type: 'spki', format: 'der' }))
      .digest(),
  };
}
