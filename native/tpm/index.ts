// The TPM binding's one export surface.
export type { EndorsementKey } from './ek.js';
export { TpmError } from './errors.js';
export { type AttestationKey, objectName } from './keys.js';
export { publicKeyFromTpmt, signatureBytes } from './public.js';
export type { Quote } from './quote.js';
export type { AkAlgorithm } from './templates.js';
export { DEFAULT_TCTI, openTpm, type Tpm } from './tpm.js';
