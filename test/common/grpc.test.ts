// common/grpc over a real loopback server (insecure credentials: the TLS side is attestation/atls's, tested there).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  bindServer,
  grpcMessage,
  StatusError,
  shutdownServer,
  toServiceError,
  unaryCall,
} from '../../common/grpc.js';
import {
  AttestationServiceClient,
  type AttestationServiceServer,
  AttestationServiceService,
  AttesterIdentity,
  Challenge,
} from '../../gen/proto/attestation.js';

describe('common/grpc', () => {
  let server: grpc.Server;
  let client: AttestationServiceClient;
  let port: number;
  let answer: () => Promise<AttesterIdentity> = async () => AttesterIdentity.fromPartial({});

  before(async () => {
    server = new grpc.Server();
    const handlers: AttestationServiceServer = {
      identify: (_call, cb) => {
        answer().then(
          (res) => cb(null, res),
          (err: unknown) =>
            cb(toServiceError(err, (e) => (e instanceof RangeError ? grpc.status.OUT_OF_RANGE : undefined))),
        );
      },
      attest: (_call, cb) => cb(toServiceError(new StatusError(grpc.status.UNIMPLEMENTED, 'not here'))),
    };
    server.addService(AttestationServiceService, handlers);
    port = await bindServer(server, '127.0.0.1', 0, grpc.ServerCredentials.createInsecure());
    client = new AttestationServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await shutdownServer(server, 500);
  });

  it('binds a free port and answers a unary call as a promise', async () => {
    assert.ok(port > 0);
    answer = async () => AttesterIdentity.fromPartial({ ekCertificate: Buffer.from('ek') });
    const res = await unaryCall(client.identify.bind(client), {}, 5000);
    assert.equal(Buffer.from(res.ekCertificate).toString(), 'ek');
  });

  it('maps errors to statuses: a StatusError keeps its code, classify names others, the rest is INTERNAL', async () => {
    const cases: [() => Promise<AttesterIdentity>, grpc.status, string][] = [
      [
        async () => Promise.reject(new StatusError(grpc.status.PERMISSION_DENIED, 'no')),
        grpc.status.PERMISSION_DENIED,
        'no',
      ],
      [async () => Promise.reject(new RangeError('too far')), grpc.status.OUT_OF_RANGE, 'too far'],
      [async () => Promise.reject(new Error('boom')), grpc.status.INTERNAL, 'boom'],
    ];
    for (const [fn, code, details] of cases) {
      answer = fn;
      await assert.rejects(unaryCall(client.identify.bind(client), {}, 5000), (err: grpc.ServiceError) => {
        assert.equal(err.code, code);
        assert.equal(err.details, details);
        assert.equal(grpcMessage(err), `${grpc.status[code]}: ${details}`);
        return true;
      });
    }
    await assert.rejects(unaryCall(client.attest.bind(client), Challenge.fromPartial({}), 5000), {
      code: grpc.status.UNIMPLEMENTED,
    });
  });

  it('gives up at the deadline', async () => {
    answer = () => new Promise(() => undefined);
    await assert.rejects(unaryCall(client.identify.bind(client), {}, 200), {
      code: grpc.status.DEADLINE_EXCEEDED,
    });
  });

  it('says what a non-gRPC error is', () => {
    assert.equal(grpcMessage(new Error('plain')), 'plain');
    assert.equal(grpcMessage('text'), 'text');
  });
});
