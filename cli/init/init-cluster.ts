import * as grpc from '@grpc/grpc-js';
import {
  type AttestedChannel,
  AttestedChannelError,
  type Endpoint,
  grpcMessage,
  openAttestedChannel,
  type PeerVerifier,
} from '../../attestation/atls/index.js';
import {
  INIT_REMEDY_METADATA,
  type InitRemedy,
  parseInitRemedy,
} from '../../common/contracts/init-remedy.js';
import { StatusError } from '../../common/grpc.js';
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
  /**
   * Stops: before the request is made, nothing is sent; after, it stops waiting for the node's answer (the
   * operator's second Ctrl-C). Either way rejects with InitInterruptedError, saying which.
   */
  signal?: AbortSignal;
}

/** The node answered, but init failed there; `logs` are the agent's own recent lines. */
export class InitFailedError extends Error {
  constructor(
    readonly step: string,
    message: string,
    readonly logs: string[],
    /** What the node says the operator can do next. */
    readonly remedy?: InitRemedy,
  ) {
    super(message);
    this.name = 'InitFailedError';
  }
}

/** The node refused the request before changing anything (wrong secret, already initialized, bad field). */
export class InitRefusedError extends StatusError {
  override name = 'InitRefusedError';
  constructor(
    code: grpc.status,
    message: string,
    /** What the node says the operator can do next (its status's trailing metadata). */
    readonly remedy?: InitRemedy,
  ) {
    super(code, message);
  }
}

/** What to do after an init whose outcome this CLI did not see: the node may well have finished it. */
export const FETCH_RESULT_HINT = 'the node may be initialized; run init again to fetch the result';

/**
 * The request was sent but the connection ended without the node's answer: the node may have finished init (it
 * keeps its answer for its owner), so this is no refusal.
 */
export class InitConnectionLostError extends Error {
  constructor(
    readonly code: grpc.status | undefined,
    detail: string,
  ) {
    super(`connection lost during init (${detail}): ${FETCH_RESULT_HINT}`);
    this.name = 'InitConnectionLostError';
  }
}

/** The node did not answer within the init deadline; it may still be running kubeadm. */
export class InitTimeoutError extends Error {
  constructor(seconds: number) {
    super(
      `no answer from the node within ${seconds} s (--timeout): it may still be initializing; ${FETCH_RESULT_HINT}`,
    );
    this.name = 'InitTimeoutError';
  }
}

/** The operator stopped: before anything was sent (`sent` false), or stopped waiting while the node goes on. */
export class InitInterruptedError extends Error {
  constructor(readonly sent = true) {
    super(
      sent
        ? `stopped waiting for the node's answer: ${FETCH_RESULT_HINT}`
        : 'interrupted before the init request was sent: nothing was changed on the node',
    );
    this.name = 'InitInterruptedError';
  }
}

// Codes that mean "the answer did not come back", not "the node said no".
const LOST = new Set([grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.UNKNOWN]);

/**
 * Opens an attested channel to the node, retrying while it is not reachable yet (a booting VM), but never past
 * an attestation failure: a node that answers with the wrong measurements is refused at once.
 */
export async function connectAttested(
  endpoint: Endpoint,
  verifier: PeerVerifier,
  options: Pick<InitClusterOptions, 'onRetry' | 'connectTimeoutMs' | 'retryDelayMs' | 'signal'> = {},
): Promise<AttestedChannel> {
  const deadline = Date.now() + (options.connectTimeoutMs ?? 120_000);
  const delayMs = options.retryDelayMs ?? 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await openAttestedChannel(endpoint, { verifier });
    } catch (err) {
      const retryable =
        err instanceof AttestedChannelError && (err.stage === 'connect' || err.stage === 'identify');
      if (!retryable || Date.now() + delayMs > deadline) throw err;
      options.onRetry?.(attempt, err.message);
      await new Promise<void>((r) => {
        const timer = setTimeout(done, delayMs);
        options.signal?.addEventListener('abort', done, { once: true });
        function done() {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', done);
          r();
        }
      });
      if (options.signal?.aborted) throw new InitInterruptedError(false);
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
    if (options.signal?.aborted) throw new InitInterruptedError(false);
    const request = typeof options.request === 'function' ? await options.request() : options.request;
    // Interrupted while the request was being made: it is not sent (from here to the call nothing awaits).
    if (options.signal?.aborted) throw new InitInterruptedError(false);
    const initTimeoutMs = options.initTimeoutMs ?? 20 * 60_000;
    return await new Promise<InitSuccess>((resolve, reject) => {
      const stream = client.init(request, new grpc.Metadata(), {
        deadline: Date.now() + initTimeoutMs,
      });
      let interrupted = false;
      const onAbort = () => {
        interrupted = true;
        stream.cancel();
      };
      if (options.signal?.aborted) onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      stream.on('close', () => options.signal?.removeEventListener('abort', onAbort));
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
            result = new InitFailedError(
              msg.kind.value.step,
              msg.kind.value.message,
              msg.kind.value.logs,
              parseInitRemedy(msg.kind.value.remedy),
            );
            break;
        }
      });
      stream.on('error', (err: grpc.ServiceError) => {
        // The answer arrived before the connection broke: that is all init needs.
        if (result !== undefined && !(result instanceof InitFailedError)) resolve(result);
        else if (interrupted) reject(new InitInterruptedError());
        else if (err.code === grpc.status.DEADLINE_EXCEEDED)
          reject(new InitTimeoutError(initTimeoutMs / 1000));
        else if (LOST.has(err.code)) reject(new InitConnectionLostError(err.code, grpcMessage(err)));
        else {
          const remedy = parseInitRemedy(err.metadata?.get(INIT_REMEDY_METADATA)[0]);
          reject(new InitRefusedError(err.code, grpcMessage(err), remedy));
        }
      });
      stream.on('end', () => {
        if (result instanceof InitFailedError) reject(result);
        else if (result) resolve(result);
        else reject(new InitConnectionLostError(undefined, 'the stream ended without an answer'));
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
