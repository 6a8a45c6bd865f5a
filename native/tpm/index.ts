// The TPM binding's one export surface.
export type { EndorsementKey } from './ek.js';
export { TpmError } from './errors.js';
export { type AttestationKey, objectName } from './keys.js';
export { publicKeyFromTpmt, signatureBytes } from './public.js';
export type { Quote } from './quote.js';
export {
  isTransportFailure,
  openResilientTpm,
  type ResilientTpmOptions,
  TpmOutcomeUnknownError,
  TpmUnavailableError,
} from './resilient.js';
export type { AkAlgorithm } from './templates.js';
export { DEFAULT_TCTI, type OpenTpmOptions, openTpm, type Tpm } from './tpm.js';
