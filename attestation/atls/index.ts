export { channelUserData } from './binding.js';
export { createEphemeralIdentity, type EphemeralIdentity, spkiOf } from './certificate.js';
export {
  type AttestedChannel,
  AttestedChannelError,
  type Endpoint,
  grpcMessage,
  openAttestedChannel,
} from './client.js';
export { createPeerVerifier } from './policy.js';
export { attestationService, attestedServerCredentials, type CallGuard } from './server.js';
export type { Attester, PeerVerifier, PendingChallenge, VerifiedAttestation } from './verifier.js';
