/**
 * The checks a verifier runs, in the order it runs them. `ek-chain` is run by createChallenge (before any secret
 * is wrapped to the EK) and again, from cache, by validateDocument as part of AK trust.
 */
export type AttestationCheck =
  | 'variant'
  | 'version'
  | 'ek-chain'
  | 'ak-trust'
  | 'signature'
  | 'attest-structure'
  | 'extra-data'
  | 'pcr-digest'
  | 'event-log'
  | 'measurements'
  // not a document check: inputs the verifier was configured with
  | 'config';

/** A failed attestation check. Messages name the check and what was expected; they never carry a secret. */
export class AttestationError extends Error {
  override readonly name = 'AttestationError';
  constructor(
    readonly check: AttestationCheck,
    message: string,
    readonly details?: Readonly<Record<string, unknown>>,
  ) {
    super(`attestation check '${check}' failed: ${message}`);
  }
}

/** A structure that could not be decoded: names the structure, the field and the byte offset. */
export class ParseError extends Error {
  override readonly name = 'ParseError';
  constructor(
    readonly structure: string,
    readonly offset: number,
    message: string,
  ) {
    super(`${structure} at byte offset ${offset}: ${message}`);
  }
}
