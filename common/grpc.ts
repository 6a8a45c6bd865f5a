// The gRPC plumbing the CLI and the agent share: a unary call as a promise, binding a server, shutting it down,
// and an error's status as one line. Transport security stays with the callers (attestation/atls): grpc-js's TLS
// hooks (pinned secure context, checkServerIdentity) are what carry attested TLS, so no wrapper sits between them.
import * as grpc from '@grpc/grpc-js';

/** A generated client's unary method, bound to its client. */
export type UnaryMethod<Req, Res> = (
  req: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: grpc.requestCallback<Res>,
) => unknown;

/** Calls a unary method with a deadline; rejects with the gRPC error (code and details kept) or on no response. */
export function unaryCall<Req, Res>(
  method: UnaryMethod<Req, Res>,
  req: Req,
  timeoutMs: number,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
      if (err || res === undefined) reject(err ?? new Error('empty response'));
      else resolve(res);
    });
  });
}

/** "CODE: details" of a gRPC error, else the error's message. */
export function grpcMessage(err: unknown): string {
  if (err && typeof err === 'object' && 'details' in err && typeof err.details === 'string' && err.details) {
    const code = 'code' in err && typeof err.code === 'number' ? grpc.status[err.code] : undefined;
    return code ? `${code}: ${err.details}` : err.details;
  }
  return err instanceof Error ? err.message : String(err);
}

/** Binds `server` to address:port (0 picks a free port) and returns the port bound. */
export function bindServer(
  server: grpc.Server,
  address: string,
  port: number,
  credentials: grpc.ServerCredentials,
): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(
      `${address.includes(':') && !address.startsWith('[') ? `[${address}]` : address}:${port}`,
      credentials,
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
}

/** Lets calls in flight finish for `graceMs`, then cuts them. */
export function shutdownServer(server: grpc.Server, graceMs = 2000): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * An error that carries the gRPC status it is answered with (server side) or was answered with (client side):
 * refusals name their code here, so one mapping serves every service.
 */
export class StatusError extends Error {
  override name = 'StatusError';
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The ServiceError a handler hands to grpc-js: a StatusError keeps its code, `classify` may name one for other
 * errors (e.g. a lock already taken → FAILED_PRECONDITION), anything else is INTERNAL with its message.
 */
export function toServiceError(
  err: unknown,
  classify: (err: unknown) => grpc.status | undefined = () => undefined,
): grpc.ServiceError {
  const details = err instanceof Error ? err.message : String(err);
  const code = err instanceof StatusError ? err.code : (classify(err) ?? grpc.status.INTERNAL);
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}
