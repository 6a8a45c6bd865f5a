import * as grpc from '@grpc/grpc-js';
import {
  type AttestedChannel,
  AttestedChannelError,
  type Endpoint,
  grpcMessage,
  openAttestedChannel,
  type PeerVerifier,
} from '../../attestation/atls/index.js';
import { formatEndpoint } from '../../common/net.js';
import {
  type InitRequest,
  type InitResponse,
  InitServiceClient,
  type InitSuccess,
} from '../../gen/proto/init.js';

export interface InitClusterOptions {
  endpoint: Endpoint;
  verifier: PeerVerifier;
  /**
   * The request, or a function that makes it once the node's attestation was verified: the CLI creates the master
   * secret only then, so a refused node leaves no new secret behind.
   */
  request: InitRequest | (() => Promise<InitRequest>);
  /** Progress lines streamed by the node. */
  onLog?: (line: string) => void;
  /** Called for each failed connection attempt while the node is not reachable yet. */
  onRetry?: (attempt: number, reason: string) => void;
  /** How long to keep trying to reach the node before giving up. */
  connectTimeoutMs?: number;
  /** How long the whole init may take once connected. */
  initTimeoutMs?: number;
  retryDelayMs?: number;
}

/** The node answered, but init failed there; `logs` are the agent's own recent lines. */
export class InitFailedError extends Error {
  constructor(
    readonly step: string,
    message: string,
    readonly logs: string[],
  ) {
    super(message);
    this.name = 'InitFailedError';
  }
}

/** The node refused the request before changing anything (wrong secret, already initialized, bad field). */
export class InitRefusedError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
    this.name = 'InitRefusedError';
  }
}

/**
 * Opens an attested channel to the node, retrying while it is not reachable yet (a booting VM), but never past
 * an attestation failure: a node that answers with the wrong measurements is refused at once.
 */
export async function connectAttested(
  endpoint: Endpoint,
  verifier: PeerVerifier,
  options: Pick<InitClusterOptions, 'onRetry' | 'connectTimeoutMs' | 'retryDelayMs'> = {},
): Promise<AttestedChannel> {
  const deadline = Date.now() + (options.connectTimeoutMs ?? 120_000);
  for (let attempt = 1; ; attempt++) {
    try {
      return await openAttestedChannel(endpoint, { verifier });
    } catch (err) {
      const retryable =
        err instanceof AttestedChannelError && (err.stage === 'connect' || err.stage === 'identify');
      if (!retryable || Date.now() + (options.retryDelayMs ?? 1000) > deadline) throw err;
      options.onRetry?.(attempt, err.message);
      await new Promise((r) => setTimeout(r, options.retryDelayMs ?? 1000));
    }
  }
}

/**
 * Sends the InitRequest over an attested channel: nothing secret leaves this process before the node's
 * attestation, bound to that very TLS connection, was verified. Resolves with the node's success message.
 */
export async function initCluster(options: InitClusterOptions): Promise<InitSuccess> {
  const channel = await connectAttested(options.endpoint, options.verifier, options);
  try {
    const client = new InitServiceClient(
      formatEndpoint(options.endpoint),
      channel.credentials,
      channel.clientOptions,
    );
    const request = typeof options.request === 'function' ? await options.request() : options.request;
    return await new Promise<InitSuccess>((resolve, reject) => {
      const stream = client.init(request, new grpc.Metadata(), {
        deadline: Date.now() + (options.initTimeoutMs ?? 20 * 60_000),
      });
      let result: InitSuccess | InitFailedError | undefined;
      stream.on('data', (msg: InitResponse) => {
        switch (msg.kind?.$case) {
          case 'log':
            options.onLog?.(msg.kind.value.line);
            break;
          case 'success':
            result = msg.kind.value;
            break;
          case 'failure':
            result = new InitFailedError(msg.kind.value.step, msg.kind.value.message, msg.kind.value.logs);
            break;
        }
      });
      stream.on('error', (err: grpc.ServiceError) =>
        reject(new InitRefusedError(err.code, grpcMessage(err))),
      );
      stream.on('end', () => {
        if (result instanceof InitFailedError) reject(result);
        else if (result) resolve(result);
        else reject(new Error('the node closed the init stream without an answer'));
      });
    });
  } finally {
    channel.close();
  }
}

/** Only attests the node: what `sextant verify` does. */
export async function verifyNode(
  endpoint: Endpoint,
  verifier: PeerVerifier,
): Promise<AttestedChannel['attestation']> {
  const channel = await openAttestedChannel(endpoint, { verifier });
  channel.close();
  return channel.attestation;
}
