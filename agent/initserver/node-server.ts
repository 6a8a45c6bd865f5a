import * as grpc from '@grpc/grpc-js';
import {
  type Attester,
  attestationService,
  attestedServerCredentials,
  createEphemeralIdentity,
} from '../../attestation/atls/index.js';
import { AttestationServiceService } from '../../gen/proto/attestation.js';
import { type InitServiceServer, InitServiceService } from '../../gen/proto/init.js';

export interface NodeServerOptions {
  attester: Attester;
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
  server.addService(AttestationServiceService, attestationService(options.attester, identity));
  if (init) server.addService(InitServiceService, init);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.address}:${options.port}`, attestedServerCredentials(identity), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { port, close: () => shutdown(server) };
}

/** Lets calls in flight finish for two seconds, then cuts them. */
async function shutdown(server: grpc.Server): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, 2000);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
