// The attestation component's one export surface: the node-side issuer, the verifier's challenge and validator,
// measurements, and the parsers they are built from (for tools and tests).
// Message types and their protobuf codecs (encode/decode).
export { AttestationDocument, AttesterIdentity, Challenge } from '../gen/proto/attestation.js';
export {
  checkAkAttributes,
  createChallenge,
  type ExpectedChallenge,
  NONCE_BYTES,
  SECRET_BYTES,
} from './challenge.js';
export { kdfa, kdfe, makeCredential, type WrappedCredential } from './credential.js';
export {
  createTrust,
  EK_CERTIFICATE_EKU,
  type Trust,
  type TrustOptions,
  verifyEkCertificate,
} from './ek-chain.js';
export { type AttestationCheck, AttestationError, ParseError } from './errors.js';
export {
  describeDevicePath,
  describeEvent,
  describeEventChecked,
  EV_NO_ACTION,
  EVENT_TYPES,
  type EventLog,
  eventDataVerified,
  eventsForPcr,
  eventTypeName,
  type LogEvent,
  parseEventLog,
  replayEventLog,
  type SpecIdEvent,
} from './event-log.js';
export {
  createIssuer,
  DEFAULT_EVENT_LOG_PATH,
  type Issuer,
  type IssuerAk,
  type IssuerEk,
  type IssuerOptions,
  type IssuerTpm,
} from './issuer.js';
export {
  formatMeasurementsFile,
  type LoadMeasurementsOptions,
  loadMeasurementsFile,
  type Measurement,
  type Measurements,
  parseMeasurements,
  parseMeasurementsFile,
  pcr15ForClusterId,
  signMeasurements,
  verifyMeasurementsFile,
} from './measurements.js';
export {
  objectName,
  type PcrSelection,
  parseTpmsAttest,
  parseTpmtPublic,
  parseTpmtSignature,
  TPM_ALG,
  type TpmPublic,
  type TpmsAttest,
  type TpmtSignature,
} from './tpm-structures.js';
export {
  clearValidationCaches,
  DOCUMENT_VERSION,
  type ExplainingEvent,
  PCR_COUNT,
  type PcrMismatch,
  type ValidateOptions,
  type ValidationResult,
  validateDocument,
} from './validator.js';
