import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { StatusError, toServiceError } from '../../common/grpc.js';
import type { AttestationServiceServer } from '../../gen/proto/attestation.js';
import { channelUserData } from './binding.js';
import type { EphemeralIdentity } from './certificate.js';
import type { Attester } from './verifier.js';

/** Server credentials for attested TLS: the ephemeral identity, TLS 1.3 only. */
export function attestedServerCredentials(identity: EphemeralIdentity): grpc.ServerCredentials {
  // grpc-js offers no per-server TLS version option; the agent speaks nothing older than TLS 1.3 anywhere.
  (tls as { DEFAULT_MIN_VERSION: string }).DEFAULT_MIN_VERSION = 'TLSv1.3';
  return grpc.ServerCredentials.createSsl(
    null,
    [{ private_key: Buffer.from(identity.keyPem), cert_chain: Buffer.from(identity.certPem) }],
    false,
  );
}

/** The AttestationService: lets a client challenge this node's TPM on the connection it will send secrets on. */
export function attestationService(
  attester: Attester,
  identity: EphemeralIdentity,
): AttestationServiceServer {
  const userData = channelUserData('server', identity.spkiDer);
  return {
    identify: (_call, callback) => {
      attester.identity().then(
        (res) => callback(null, res),
        (err: unknown) => callback(toServiceError(new Error(`identify: ${messageOf(err)}`))),
      );
    },
    attest: (call, callback) => {
      const challenge = call.request;
      if (challenge.nonce.length !== 32) {
        callback(toServiceError(new StatusError(grpc.status.INVALID_ARGUMENT, 'nonce: expected 32 bytes')));
        return;
      }
      attester.attest(challenge, userData).then(
        (res) => callback(null, res),
        (err: unknown) => callback(toServiceError(new Error(`attest: ${messageOf(err)}`))),
      );
    },
  };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
