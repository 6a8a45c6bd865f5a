import { X509Certificate } from 'node:crypto';
import { connect, createSecureContext, type PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { grpcMessage, unaryCall } from '../../common/grpc.js';
import { type Endpoint, formatEndpoint } from '../../common/net.js';
import { AttestationServiceClient } from '../../gen/proto/attestation.js';
import { channelUserData } from './binding.js';
import { ATLS_SERVER_NAME, spkiOf } from './certificate.js';
import type { PeerVerifier, VerifiedAttestation } from './verifier.js';

export type { Endpoint };
/** Kept here for the modules that already import it with the channel. */
export { grpcMessage };

export interface AttestedChannel {
  readonly endpoint: Endpoint;
  readonly channel: grpc.Channel;
  readonly credentials: grpc.ChannelCredentials;
  /** Pass to generated clients so every call rides the pinned, attested channel. */
  readonly clientOptions: grpc.ClientOptions;
  readonly serverCertificate: Buffer;
  readonly attestation: VerifiedAttestation;
  close(): void;
}

export interface OpenOptions {
  verifier: PeerVerifier;
  timeoutMs?: number;
}

export class AttestedChannelError extends Error {
  constructor(
    readonly endpoint: Endpoint,
    readonly stage: 'connect' | 'identify' | 'challenge' | 'attest' | 'verify',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${formatEndpoint(endpoint)}: ${stage}: ${message}`, options);
    this.name = 'AttestedChannelError';
  }
}

/**
 * Learns the server's certificate with one bare TLS 1.3 handshake. Nothing is trusted yet: the certificate only
 * becomes the pin that every later connection must present, and the attestation decides whether it is trusted.
 */
export function fetchServerCertificate(endpoint: Endpoint, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: endpoint.host,
      port: endpoint.port,
      servername: ATLS_SERVER_NAME,
      ALPNProtocols: ['h2'],
      minVersion: 'TLSv1.3',
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new AttestedChannelError(endpoint, 'connect', `no TLS handshake within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const cert = socket.getPeerX509Certificate();
      socket.end();
      if (!cert) reject(new AttestedChannelError(endpoint, 'connect', 'server sent no certificate'));
      else resolve(cert.raw);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new AttestedChannelError(endpoint, 'connect', err.message, { cause: err }));
    });
  });
}

/** Credentials that accept exactly one server certificate, over TLS 1.3 only. */
export function pinnedCredentials(serverCertDer: Buffer): grpc.ChannelCredentials {
  const pinned = new X509Certificate(serverCertDer);
  const context = createSecureContext({ ca: pinned.toString(), minVersion: 'TLSv1.3' });
  return grpc.credentials.createFromSecureContext(context, {
    // grpc-js hands this to tls.connect, where it replaces the hostname check: the pin is the identity here.
    checkServerIdentity: (_host: string, cert: PeerCertificate) =>
      cert.raw.equals(serverCertDer)
        ? undefined
        : new Error('server certificate differs from the attested one'),
  });
}

/**
 * Opens a gRPC channel to an attested server: pins its TLS certificate, challenges its TPM on that very channel,
 * and verifies that the document is bound to the pinned key. Only then is the channel returned, so nothing
 * secret can travel before the server has proven what it runs.
 */
export async function openAttestedChannel(
  endpoint: Endpoint,
  options: OpenOptions,
): Promise<AttestedChannel> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const serverCertificate = await fetchServerCertificate(endpoint, timeoutMs);
  const credentials = pinnedCredentials(serverCertificate);
  const channelOptions: grpc.ChannelOptions = {
    'grpc.ssl_target_name_override': ATLS_SERVER_NAME,
    'grpc.default_authority': ATLS_SERVER_NAME,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
  };
  const channel = new grpc.Channel(formatEndpoint(endpoint), credentials, channelOptions);
  const clientOptions: grpc.ClientOptions = { channelOverride: channel };
  const attestation = new AttestationServiceClient(formatEndpoint(endpoint), credentials, clientOptions);
  try {
    const identity = await unaryCall(attestation.identify.bind(attestation), {}, timeoutMs).catch((err) => {
      throw new AttestedChannelError(endpoint, 'identify', grpcMessage(err), { cause: err });
    });
    const pending = await options.verifier.challenge(identity).catch((err) => {
      throw new AttestedChannelError(
        endpoint,
        'challenge',
        err instanceof Error ? err.message : String(err),
        {
          cause: err,
        },
      );
    });
    const document = await unaryCall(
      attestation.attest.bind(attestation),
      pending.challenge,
      timeoutMs,
    ).catch((err) => {
      throw new AttestedChannelError(endpoint, 'attest', grpcMessage(err), { cause: err });
    });
    const verified = await pending
      .verify(document, channelUserData('server', spkiOf(serverCertificate)))
      .catch((err) => {
        throw new AttestedChannelError(endpoint, 'verify', err instanceof Error ? err.message : String(err), {
          cause: err,
        });
      });
    return {
      endpoint,
      channel,
      credentials,
      clientOptions,
      serverCertificate,
      attestation: verified,
      close: () => channel.close(),
    };
  } catch (err) {
    channel.close();
    throw err;
  }
}
