import * as grpc from '@grpc/grpc-js';
import {
  type Attester,
  attestationService,
  attestedServerCredentials,
  type CallGuard,
  createEphemeralIdentity,
} from '../../attestation/atls/index.js';
import { bindServer, shutdownServer } from '../../common/grpc.js';
import { AttestationServiceService } from '../../gen/proto/attestation.js';
import { type InitServiceServer, InitServiceService } from '../../gen/proto/init.js';

export interface NodeServerOptions {
  attester: Attester;
  /** Per-peer rate, concurrency and TPM budget every Identify/Attest passes first (shared with the JoinService). */
  guard?: CallGuard;
  address: string;
  port: number;
}

export interface RunningServer {
  port: number;
  close(): Promise<void>;
}

/**
 * The node's own gRPC server on attested TLS: the attestation service always (so an operator can verify any
 * node), the init service only on a fresh node. Each start has a new ephemeral TLS identity.
 */
export async function serveNode(
  options: NodeServerOptions,
  init?: InitServiceServer,
): Promise<RunningServer> {
  const identity = await createEphemeralIdentity();
  const server = new grpc.Server();
  server.addService(AttestationServiceService, attestationService(options.attester, identity, options.guard));
  if (init) server.addService(InitServiceService, init);
  const port = await bindServer(server, options.address, options.port, attestedServerCredentials(identity));
  return { port, close: () => shutdownServer(server) };
}
