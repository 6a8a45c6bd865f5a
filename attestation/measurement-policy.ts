import { AttestationError } from './errors.js';
import type { Measurements } from './measurements.js';

/**
 * The PCRs every measurements set must enforce (not warnOnly): the firmware and boot chain as the image doc
 * (image/README.md, "Measurements") finds them on OVMF + swtpm + systemd-stub. 0 firmware code, 2–3 option ROMs and
 * their configuration, 4 boot loader and UKI, 5 GPT and boot-manager configuration, 6 platform events, 7 Secure Boot
 * policy, 9 the files the stub loads (initrd), 11 the UKI's sections (kernel, command line, initrd, os-release).
 * 8 and 12–14 stay zero with this boot chain (no GRUB to extend 8; no command-line overrides, system extensions or
 * shim/MOK for 12–14): enforcing their zero is what refuses a boot that added any of those.
 */
export const REQUIRED_PCRS: readonly number[] = [0, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14];

/** The boot-chain PCRs a measurements set may leave out (or warn on), each with the reason why. */
export const EXCLUDABLE_PCRS: Readonly<Record<number, string>> = {
  1: 'per-VM platform configuration (OVMF measures boot variables and NIC/TPM-dependent configuration)',
  10: 'IMA, a run-time log that differs per node and per moment',
};

export interface MeasurementPolicyOptions {
  /** Accept a set weaker than the minimum; the caller must say so loudly (`onInsecure`). */
  insecure?: boolean;
  /** Called with one line per weakness when `insecure` lets a weak set through. */
  onInsecure?: (message: string) => void;
  /** Names the set in errors, e.g. a file path or a config field. */
  where?: string;
}

/** What makes a set weaker than the minimum: each required PCR that is missing or only warnOnly. */
export function measurementWeaknesses(measurements: Measurements): string[] {
  const out: string[] = [];
  for (const pcr of REQUIRED_PCRS) {
    const m = measurements[pcr];
    if (m === undefined) out.push(`PCR ${pcr} is not measured`);
    else if (m.warnOnly) out.push(`PCR ${pcr} is warnOnly`);
  }
  return out;
}

/**
 * Refuses a measurements set that does not enforce every required PCR (an empty or all-warnOnly set would trust
 * any node), unless the operator explicitly asked for insecure measurements; then each weakness is reported
 * through `onInsecure`. Returns the set unchanged.
 */
export function enforceMeasurementPolicy(
  measurements: Measurements,
  options: MeasurementPolicyOptions = {},
): Measurements {
  const weaknesses = measurementWeaknesses(measurements);
  if (weaknesses.length === 0) return measurements;
  const where = options.where ?? 'measurements';
  if (!options.insecure) {
    throw new AttestationError(
      'measurements',
      `${where}: weaker than the minimum enforced set (PCRs ${REQUIRED_PCRS.join(', ')} must be measured and not warnOnly): ${weaknesses.join('; ')}`,
    );
  }
  for (const w of weaknesses) {
    options.onInsecure?.(`INSECURE: ${where}: ${w}; nodes are trusted without this check`);
  }
  return measurements;
}
