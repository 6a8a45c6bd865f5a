// Measurements tables for the unit tier: every PCR the policy requires, zero-valued, as a release would pin them.
import { REQUIRED_PCRS } from '../../attestation/measurement-policy.js';
import type { Measurements } from '../../attestation/measurements.js';

/** Every required PCR with an all-zero digest: enforced (the minimum the policy accepts) or, if asked, warn-only. */
export function everyRequiredPcr(options: { warnOnly?: boolean } = {}): Measurements {
  // a fresh table per call: a test that edits its copy cannot change another's
  return Object.fromEntries(
    REQUIRED_PCRS.map((pcr) => [pcr, { expected: '00'.repeat(32), warnOnly: options.warnOnly ?? false }]),
  );
}
