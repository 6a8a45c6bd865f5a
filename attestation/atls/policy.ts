import { createChallenge } from '../challenge.js';
import type { Trust } from '../ek-chain.js';
import type { Measurements } from '../measurements.js';
import { validateDocument } from '../validator.js';
import type { PeerVerifier, PendingChallenge } from './verifier.js';

export interface VerifierPolicy {
  trust: Trust;
  measurements: Measurements;
  variant: string;
}

/**
 * A PeerVerifier from a policy: the EK must chain to the trusted CAs, the AK must be bound to it by credential
 * activation, and the quoted PCRs must match the measurements. Each challenge checks exactly one document.
 */
export function createPeerVerifier(policy: VerifierPolicy): PeerVerifier {
  return {
    challenge: async (identity): Promise<PendingChallenge> => {
      const { challenge, expected } = createChallenge(identity, policy.trust);
      let spent = false;
      return {
        challenge,
        verify: async (document, userData) => {
          if (spent) throw new Error('this challenge was already answered (nonces are single use)');
          spent = true;
          const result = validateDocument(document, {
            expected,
            userData,
            measurements: policy.measurements,
            trust: policy.trust,
            variant: policy.variant,
          });
          return {
            pcrs: result.pcrs,
            warnings: result.warnings,
            akName: result.akName,
            ekCertificateHash: result.ekCertificateHash,
            ekPublicHash: result.ekPublicHash,
          };
        },
      };
    },
  };
}
