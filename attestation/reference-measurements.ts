import { describeEventChecked, eventsForPcr, type LogEvent, parseEventLog } from './event-log.js';
import { EXCLUDABLE_PCRS, REQUIRED_PCRS } from './measurement-policy.js';
import type { Measurements } from './measurements.js';
import { TPM_ALG } from './tpm-structures.js';

/** What one reference boot of an image showed: its SHA-256 PCRs (hex by index) and, when captured, its boot log. */
export interface ReferenceBoot {
  name: string;
  pcrs: Record<string, string>;
  eventLog?: Buffer;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Thrown when two reference boots disagree on a boot-chain PCR; names each PCR and the events behind it. */
export class ReferenceMismatchError extends Error {
  constructor(
    readonly pcrs: number[],
    message: string,
  ) {
    super(message);
    this.name = 'ReferenceMismatchError';
  }
}

function eventLine(ev: LogEvent): string {
  return `#${ev.index} ${ev.typeName} sha256:${ev.digests.get(TPM_ALG.SHA256)?.toString('hex') ?? '-'} (${describeEventChecked(ev)})`;
}

/** The events of PCR `pcr` that differ between the two logs, position by position, one line each. */
function differingEvents(a: ReferenceBoot, b: ReferenceBoot, pcr: number): string[] {
  if (!a.eventLog || !b.eventLog)
    return ['(no boot event log captured; the differing events cannot be named)'];
  let evA: LogEvent[];
  let evB: LogEvent[];
  try {
    evA = eventsForPcr(parseEventLog(a.eventLog), pcr);
    evB = eventsForPcr(parseEventLog(b.eventLog), pcr);
  } catch (err) {
    return [`(a boot event log does not parse: ${(err as Error).message})`];
  }
  const out: string[] = [];
  for (let i = 0; i < Math.max(evA.length, evB.length); i++) {
    const x = evA[i];
    const y = evB[i];
    const dx = x?.digests.get(TPM_ALG.SHA256);
    const dy = y?.digests.get(TPM_ALG.SHA256);
    if (x && y && dx && dy && dx.equals(dy)) continue;
    out.push(`${a.name}: ${x ? eventLine(x) : '(no event)'} / ${b.name}: ${y ? eventLine(y) : '(no event)'}`);
  }
  if (out.length === 0)
    out.push('(the logs agree on every event of this PCR: it was extended after the boot log)');
  return out;
}

/**
 * The image's measurements from two reference boots of the same image on two different VMs (names, MACs, TPMs):
 * every required boot-chain PCR is enforced, and must be equal in both boots. A required PCR that differs fails
 * the whole generation, naming the PCR, both values and the differing events: a boot chain that is not
 * reproducible cannot be attested, and quietly not checking it would accept anything there. Only the PCRs with
 * a documented reason (EXCLUDABLE_PCRS) are left out; `onNote` says which and why.
 */
export function referenceMeasurements(
  a: ReferenceBoot,
  b: ReferenceBoot,
  onNote: (line: string) => void = () => {},
): Measurements {
  const measurements: Measurements = {};
  const problems: string[] = [];
  const differing: number[] = [];
  for (const pcr of REQUIRED_PCRS) {
    const k = String(pcr);
    const va = a.pcrs[k]?.toLowerCase();
    const vb = b.pcrs[k]?.toLowerCase();
    for (const [boot, v] of [
      [a, va],
      [b, vb],
    ] as const) {
      if (v === undefined || !HEX64.test(v)) {
        problems.push(`PCR ${pcr}: ${boot.name} reported ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
      }
    }
    if (va === undefined || vb === undefined || !HEX64.test(va) || !HEX64.test(vb)) continue;
    if (va !== vb) {
      differing.push(pcr);
      problems.push(
        `PCR ${pcr} differs between two VMs of the same image (${a.name} ${va}, ${b.name} ${vb}); differing events: ${differingEvents(a, b, pcr).join('; ')}`,
      );
      continue;
    }
    measurements[pcr] = { expected: va, warnOnly: false };
  }
  if (problems.length > 0) {
    throw new ReferenceMismatchError(
      differing,
      `image measurements refused: ${problems.join(' | ')}. Only PCRs ${Object.keys(EXCLUDABLE_PCRS).join(', ')} may be left out (documented in image/README.md); make the boot chain reproducible instead`,
    );
  }
  for (const [pcr, reason] of Object.entries(EXCLUDABLE_PCRS)) onNote(`PCR ${pcr} left out: ${reason}`);
  return measurements;
}
