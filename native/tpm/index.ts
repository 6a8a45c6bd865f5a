// The TPM binding's one export surface.

export { TpmError } from './errors.js';
export { objectName } from './keys.js';
export { publicKeyFromTpmt } from './public.js';

export { openResilientTpm, TpmOutcomeUnknownError, TpmUnavailableError } from './resilient.js';
export type { AkAlgorithm } from './templates.js';
export { openTpm, type Tpm } from './tpm.js';
