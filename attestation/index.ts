// The attestation component's one export surface: the node-side issuer, the verifier's challenge and validator,
// measurements, and the parsers they are built from (for tools and tests).
// Message types and their protobuf codecs (encode/decode).
export { AttestationDocument, AttesterIdentity } from '../gen/proto/attestation.js';
export { createChallenge, type ExpectedChallenge } from './challenge.js';
export { kdfa, makeCredential } from './credential.js';
export { createTrust, type Trust } from './ek-chain.js';
export { AttestationError, ParseError } from './errors.js';
export {
  describeDevicePath,
  describeEvent,
  EV_NO_ACTION,
  type EventLog,
  eventDataVerified,
  eventsForPcr,
  parseEventLog,
  replayEventLog,
} from './event-log.js';
export { createIssuer, type Issuer } from './issuer.js';
export {
  formatMeasurementsFile,
  loadMeasurementsFile,
  type Measurements,
  parseMeasurements,
  parseMeasurementsFile,
  pcr15ForClusterId,
  releaseKeyFingerprint,
  signMeasurements,
  verifyMeasurementsFile,
} from './measurements.js';
export { parseTpmtPublic, parseTpmtSignature, TPM_ALG } from './tpm-structures.js';
export { clearValidationCaches, type PcrMismatch, validateDocument } from './validator.js';
