import type { AttestationDocument, AttesterIdentity, Challenge } from '../../gen/proto/attestation.js';

/** What a verified peer's attestation showed. */
export interface VerifiedAttestation {
  pcrs: Map<number, Buffer>;
  warnings: string[];
  /** The AK name of the attesting TPM: a stable identity for that node. */
  akName: Buffer;
  /** SHA-256 of the EK certificate: the hardware identity the AK is bound to. */
  ekCertificateHash: Buffer;
  /** SHA-256 of the EK public key (SPKI DER): what admissions are keyed by (any AK, any certificate of that EK). */
  ekPublicHash: Buffer;
}

/** One challenge in flight: it can check exactly one document, then it is spent. */
export interface PendingChallenge {
  readonly challenge: Challenge;
  verify(document: AttestationDocument, userData: Buffer): Promise<VerifiedAttestation>;
}

/**
 * The verifying side of attested TLS, kept apart from the transport so the CLI, the join client and the
 * JoinService share one policy object (trusted EK CAs, measurements, variant).
 */
export interface PeerVerifier {
  /** Checks the peer's EK certificate and wraps a fresh credential and nonce for its AK. */
  challenge(identity: AttesterIdentity): Promise<PendingChallenge>;
}

/** The attesting side: a node's TPM behind the issuer. */
export interface Attester {
  identity(): Promise<AttesterIdentity>;
  attest(challenge: Challenge, userData: Buffer): Promise<AttestationDocument>;
}
