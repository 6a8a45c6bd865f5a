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

/**
 * Admission of a call before it costs anything: per-peer rate, TPM budget, concurrency (agent/joinservice/limits.ts
 * CallLimits). Rejects with a StatusError (RESOURCE_EXHAUSTED) when the call must not run.
 */
export interface CallGuard {
  admit(peer: string, tpmOps: number): Promise<() => void>;
}

/** TPM operations an Attest costs: the credential activation and the quote. Identify is served from the cache. */
const ATTEST_TPM_OPS = 2;

/**
 * The AttestationService: lets a client challenge this node's TPM on the connection it will send secrets on. With a
 * guard, every call passes it first, so a flood of Identify/Attest from one address (or from all together) can
 * neither monopolise the TPM nor slow a legitimate join without bound.
 */
export function attestationService(
  attester: Attester,
  identity: EphemeralIdentity,
  guard?: CallGuard,
): AttestationServiceServer {
  const userData = channelUserData('server', identity.spkiDer);
  function guarded<T>(
    what: string,
    peer: string,
    tpmOps: number,
    run: () => Promise<T>,
    callback: (err: grpc.ServiceError | null, res?: T) => void,
  ): void {
    const admitted = guard ? guard.admit(peer, tpmOps) : Promise.resolve(() => {});
    admitted.then(
      (release) =>
        run()
          .finally(release)
          .then(
            (res) => callback(null, res),
            (err: unknown) => callback(toServiceError(new Error(`${what}: ${messageOf(err)}`))),
          ),
      (err: unknown) =>
        callback(
          toServiceError(
            err instanceof StatusError
              ? new StatusError(err.code, `${what}: ${err.message}`)
              : new StatusError(grpc.status.RESOURCE_EXHAUSTED, `${what}: ${messageOf(err)}`),
          ),
        ),
    );
  }
  return {
    identify: (call, callback) => guarded('identify', call.getPeer(), 0, () => attester.identity(), callback),
    attest: (call, callback) => {
      const challenge = call.request;
      if (challenge.nonce.length !== 32) {
        callback(toServiceError(new StatusError(grpc.status.INVALID_ARGUMENT, 'nonce: expected 32 bytes')));
        return;
      }
      guarded('attest', call.getPeer(), ATTEST_TPM_OPS, () => attester.attest(challenge, userData), callback);
    },
  };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
