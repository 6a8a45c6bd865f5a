// Test harness: a fake attester and its verifier for channel-level tests: the document echoes the nonce and the
// channel binding, so a test exercises the TLS transport (certificates, pinning, dates, binding), not the TPM quote.
import { randomBytes } from 'node:crypto';
import type { Attester, PeerVerifier } from '../../attestation/atls/index.js';
import type { AttestationDocument } from '../../gen/proto/attestation.js';

/** The echo attester with `tamper` applied to each document before it is sent (a relay, a replay). */
export function tamperedEchoAttester(tamper: (doc: AttestationDocument) => void): Attester {
  return {
    identity: async () => ({
      variant: 'fake',
      akPublic: Buffer.from('ak'),
      ekCertificate: Buffer.alloc(0),
      ekPublic: Buffer.alloc(0),
    }),
    attest: async (challenge, userData) => {
      const doc: AttestationDocument = {
        version: 1,
        variant: 'fake',
        akPublic: Buffer.from('ak'),
        quote: Buffer.from(challenge.nonce),
        signature: Buffer.alloc(0),
        pcrs: {},
        eventLog: Buffer.alloc(0),
        ekCertificate: Buffer.alloc(0),
        ekPublic: Buffer.alloc(0),
        credentialSecret: Buffer.alloc(0),
        userData,
      };
      tamper(doc);
      return doc;
    },
  };
}

export const echoAttester: Attester = tamperedEchoAttester(() => {});

export const echoVerifier: PeerVerifier = {
  challenge: async () => {
    const nonce = randomBytes(32);
    return {
      challenge: { nonce, credentialBlob: Buffer.alloc(0), encryptedSecret: Buffer.alloc(0) },
      verify: async (doc, userData) => {
        if (!doc.quote.equals(nonce)) throw new Error('nonce mismatch');
        if (!doc.userData.equals(userData)) throw new Error('user data is not bound to this TLS key');
        return {
          pcrs: new Map(),
          warnings: [],
          akName: Buffer.from('ak'),
          ekCertificateHash: Buffer.alloc(32),
          ekPublicHash: Buffer.alloc(32),
        };
      },
    };
  },
};
