export { type ChannelRole, channelUserData } from './binding.js';
export {
  ATLS_SERVER_NAME,
  createEphemeralIdentity,
  type EphemeralIdentity,
  spkiOf,
  toPem,
} from './certificate.js';
export {
  type AttestedChannel,
  AttestedChannelError,
  type Endpoint,
  fetchServerCertificate,
  grpcMessage,
  type OpenOptions,
  openAttestedChannel,
  pinnedCredentials,
} from './client.js';
export { createPeerVerifier, type VerifierPolicy } from './policy.js';
export { attestationService, attestedServerCredentials } from './server.js';
export type { Attester, PeerVerifier, PendingChallenge, VerifiedAttestation } from './verifier.js';
