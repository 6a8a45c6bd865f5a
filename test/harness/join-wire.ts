// Test harness: what a joining node sends a JoinService, on the wire, from a TPM issuer in this process — for
// tests and benchmarks that need many nodes or a node that asks for what it should not get.
import * as grpc from '@grpc/grpc-js';
import { spkiOf } from '../../attestation/atls/certificate.js';
import {
  channelUserData,
  createPeerVerifier,
  type Endpoint,
  openAttestedChannel,
} from '../../attestation/atls/index.js';
import type { Trust } from '../../attestation/ek-chain.js';
import { createIssuer, type Issuer } from '../../attestation/issuer.js';
import type { AttestationDocument, Challenge } from '../../gen/proto/attestation.js';
import {
  type IssueJoinTicketResponse,
  type IssueRejoinTicketResponse,
  JoinServiceClient,
} from '../../gen/proto/join.js';
import { openTpm, type Tpm } from '../../native/tpm/index.js';
import { type Swtpm, type SwtpmCa, startSwtpm } from './swtpm.js';

type Unary<Req, Res> = (
  req: Req,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res: Res) => void,
) => unknown;

function unary<Req, Res>(fn: Unary<Req, Res>, req: Req): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn(req, new grpc.Metadata(), { deadline: Date.now() + 120_000 }, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  );
}

/** Opens an attested channel to the JoinService, attests `issuer` on it, and makes one call with the document. */
async function withAttestation<Res>(
  endpoint: Endpoint,
  trust: Trust,
  issuer: Issuer,
  call: (client: JoinServiceClient, attestation: AttestationDocument) => Promise<Res>,
): Promise<Res> {
  // The identity checks a joining node makes on the channel; the boot PCRs are the join client's business.
  const verifier = createPeerVerifier({ trust, measurements: {}, variant: 'qemu-vtpm' });
  const channel = await openAttestedChannel(endpoint, { verifier });
  try {
    const client = new JoinServiceClient(
      `${endpoint.host}:${endpoint.port}`,
      channel.credentials,
      channel.clientOptions,
    );
    const challenge = await unary<{ identity: unknown }, Challenge>(client.challenge.bind(client) as never, {
      identity: await issuer.identity(),
    });
    const attestation = await issuer.attest(
      challenge,
      channelUserData('client', spkiOf(channel.serverCertificate)),
    );
    return await call(client, attestation);
  } finally {
    channel.close();
  }
}

export function requestJoinTicket(
  endpoint: Endpoint,
  trust: Trust,
  issuer: Issuer,
  request: { nodeName: string; diskUuid: string; isControlPlane?: boolean },
): Promise<IssueJoinTicketResponse> {
  return withAttestation(endpoint, trust, issuer, (client, attestation) =>
    unary(client.issueJoinTicket.bind(client) as never, {
      attestation,
      diskUuid: request.diskUuid,
      isControlPlane: request.isControlPlane ?? false,
      nodeName: request.nodeName,
    }),
  );
}

/** Tells the JoinService the node joined (its quote must show PCR 15 = the cluster's value). */
export function confirmJoin(
  endpoint: Endpoint,
  trust: Trust,
  issuer: Issuer,
  diskUuid: string,
): Promise<unknown> {
  return withAttestation(endpoint, trust, issuer, (client, attestation) =>
    unary(client.confirmJoin.bind(client) as never, { attestation, diskUuid }),
  );
}

/** Asks the JoinService for its owner proof over `nonce`; returns it with the TLS key it is bound to. */
export async function requestOwnerProof(
  endpoint: Endpoint,
  trust: Trust,
  nonce: Buffer,
): Promise<{ signature: Buffer; serverSpki: Buffer }> {
  const verifier = createPeerVerifier({ trust, measurements: {}, variant: 'qemu-vtpm' });
  const channel = await openAttestedChannel(endpoint, { verifier });
  try {
    const client = new JoinServiceClient(
      `${endpoint.host}:${endpoint.port}`,
      channel.credentials,
      channel.clientOptions,
    );
    const proof = await unary<{ nonce: Buffer }, { signature: Buffer }>(
      client.proveOwner.bind(client) as never,
      {
        nonce,
      },
    );
    return { signature: proof.signature, serverSpki: spkiOf(channel.serverCertificate) };
  } finally {
    channel.close();
  }
}

export function requestRejoinTicket(
  endpoint: Endpoint,
  trust: Trust,
  issuer: Issuer,
  diskUuid: string,
): Promise<IssueRejoinTicketResponse> {
  return withAttestation(endpoint, trust, issuer, (client, attestation) =>
    unary(client.issueRejoinTicket.bind(client) as never, { attestation, diskUuid }),
  );
}

/** A machine that joins over the wire: its own swtpm (EK certificate from `ca`) and an issuer on it. */
export interface WireMachine {
  swtpm: Swtpm;
  tpm: Tpm;
  issuer: Issuer;
  stop(): Promise<void>;
}

export async function startWireMachine(
  ca: SwtpmCa,
  options: { akAlgorithm?: 'ecc' | 'rsa' } = {},
): Promise<WireMachine> {
  const swtpm = await startSwtpm({ ca });
  const tpm = await openTpm(swtpm.tcti);
  const issuer = await createIssuer({
    tpm,
    variant: 'qemu-vtpm',
    eventLogPath: '/nonexistent',
    ...(options.akAlgorithm ? { akAlgorithm: options.akAlgorithm } : {}),
  });
  return {
    swtpm,
    tpm,
    issuer,
    async stop() {
      await issuer.close().catch(() => {});
      await tpm.close().catch(() => {});
      await swtpm.stop();
    },
  };
}
