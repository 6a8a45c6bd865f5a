// Shared set-up for attestation tests: a swtpm with the binding open, an issuer on it, and a boot log replayed
// into its PCRs so documents carry an event log that matches the quote.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type AttestationDocument,
  AttestationError,
  createIssuer,
  EV_NO_ACTION,
  type Issuer,
  parseEventLog,
  TPM_ALG,
} from '../../attestation/index.js';
import { openTpm, type Tpm } from '../../native/tpm/index.js';
import { type Swtpm, type SwtpmCa, startSwtpm } from '../harness/swtpm.js';

export const VARIANT = 'qemu-vtpm';
export const FIXTURE_DIR = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'fixtures', 'eventlog');
export const FIXTURE_LOG = join(FIXTURE_DIR, 'ovmf-swtpm.bin');
export const FIXTURE_PCRS = join(FIXTURE_DIR, 'ovmf-swtpm.pcrs.json');
export const FIXTURE_YAML = join(FIXTURE_DIR, 'ovmf-swtpm.tpm2_eventlog.yaml');

export function fixturePcrs(): Record<string, string> {
  return JSON.parse(readFileSync(FIXTURE_PCRS, 'utf8')) as Record<string, string>;
}

export interface Attester {
  swtpm: Swtpm;
  tpm: Tpm;
  issuer: Issuer;
  stop(): Promise<void>;
}

/** A swtpm + binding + issuer; with `bootLog`, the fixture boot log is first replayed into the PCRs. */
export async function startAttester(
  options: { ca?: SwtpmCa; akAlgorithm?: 'ecc' | 'rsa'; eventLogPath?: string; bootLog?: boolean } = {},
): Promise<Attester> {
  process.env.TSS2_LOG ??= 'all+none';
  const swtpm = await startSwtpm(options.ca ? { ca: options.ca } : {});
  let tpm: Tpm | undefined;
  try {
    tpm = await openTpm(swtpm.tcti);
    if (options.bootLog) await replayBootLog(tpm, readFileSync(FIXTURE_LOG));
    const issuer = await createIssuer({
      tpm,
      variant: VARIANT,
      eventLogPath: options.eventLogPath ?? (options.bootLog ? FIXTURE_LOG : '/nonexistent/event-log'),
      ...(options.akAlgorithm ? { akAlgorithm: options.akAlgorithm } : {}),
    });
    const t = tpm;
    return {
      swtpm,
      tpm: t,
      issuer,
      async stop() {
        await issuer.close();
        await t.close();
        await swtpm.stop();
      },
    };
  } catch (err) {
    await tpm?.close();
    await swtpm.stop();
    throw err;
  }
}

/** Extends every measured event's SHA-256 digest into the TPM, as the firmware did during the captured boot. */
export async function replayBootLog(tpm: Tpm, logBytes: Buffer): Promise<void> {
  const log = parseEventLog(logBytes);
  for (const ev of log.events) {
    if (ev.index === 0 || ev.type === EV_NO_ACTION) continue;
    await tpm.extendPcr(ev.pcr, ev.digests.get(TPM_ALG.SHA256)!);
  }
}

/** A deep copy, so each negative test mutates its own document. */
export function cloneDoc(doc: AttestationDocument): AttestationDocument {
  const pcrs: Record<number, Buffer> = {};
  for (const [k, v] of Object.entries(doc.pcrs)) pcrs[Number(k)] = Buffer.from(v);
  return {
    ...doc,
    akPublic: Buffer.from(doc.akPublic),
    quote: Buffer.from(doc.quote),
    signature: Buffer.from(doc.signature),
    pcrs,
    eventLog: Buffer.from(doc.eventLog),
    ekCertificate: Buffer.from(doc.ekCertificate),
    ekPublic: Buffer.from(doc.ekPublic),
    credentialSecret: Buffer.from(doc.credentialSecret),
    userData: Buffer.from(doc.userData),
  };
}

export function flip(buf: Buffer, at: number): Buffer {
  const out = Buffer.from(buf);
  out[at] = out[at]! ^ 0x01;
  return out;
}

/** assert.throws predicate: an AttestationError from exactly this check. */
export function failsAt(check: string, messagePart?: RegExp) {
  return (err: unknown) => {
    if (!(err instanceof AttestationError)) throw err;
    if (err.check !== check) throw new Error(`expected check '${check}', got '${err.check}': ${err.message}`);
    if (messagePart && !messagePart.test(err.message))
      throw new Error(`message ${err.message} lacks ${messagePart}`);
    return true;
  };
}
