import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { serveNode } from '../../../agent/initserver/node-server.js';
import { ATLS_SERVER_NAME } from '../../../attestation/atls/certificate.js';
import { fetchServerCertificate, pinnedCredentials } from '../../../attestation/atls/client.js';
import { AttestationDocument, AttesterIdentity } from '../../../gen/proto/attestation.js';
import {
  InitRequest,
  type InitResponse,
  InitServiceClient,
  type InitServiceServer,
} from '../../../gen/proto/init.js';

const attester = {
  identity: async () => AttesterIdentity.fromPartial({}),
  attest: async () => AttestationDocument.fromPartial({}),
};

/** Calls Init on the node server over its pinned TLS certificate; resolves with the call's status code. */
async function callInit(port: number): Promise<grpc.status> {
  const cert = await fetchServerCertificate({ host: '127.0.0.1', port });
  const client = new InitServiceClient(`127.0.0.1:${port}`, pinnedCredentials(cert), {
    'grpc.ssl_target_name_override': ATLS_SERVER_NAME,
  });
  try {
    return await new Promise<grpc.status>((resolve) => {
      const call = client.init(InitRequest.fromPartial({}));
      call.on('data', (_m: InitResponse) => {});
      call.on('error', (err: grpc.ServiceError) => resolve(err.code));
      call.on('end', () => resolve(grpc.status.OK));
    });
  } finally {
    client.close();
  }
}

describe('serveNode', () => {
  it('serves attested TLS with a fresh identity per start, and Init only when given', async () => {
    const refuse: InitServiceServer = {
      init: (call) => {
        call.emit(
          'error',
          Object.assign(new Error('no'), {
            code: grpc.status.PERMISSION_DENIED,
            details: 'no',
            metadata: new grpc.Metadata(),
          }),
        );
      },
    };
    const withInit = await serveNode({ attester, address: '127.0.0.1', port: 0 }, refuse);
    const without = await serveNode({ attester, address: '127.0.0.1', port: 0 });
    try {
      assert.ok(withInit.port > 0 && without.port > 0);
      const [a, b] = await Promise.all([
        fetchServerCertificate({ host: '127.0.0.1', port: withInit.port }),
        fetchServerCertificate({ host: '127.0.0.1', port: without.port }),
      ]);
      assert.ok(!a.equals(b), 'each server its own ephemeral certificate');
      assert.equal(
        await callInit(withInit.port),
        grpc.status.PERMISSION_DENIED,
        'Init reaches the init service',
      );
      assert.equal(await callInit(without.port), grpc.status.UNIMPLEMENTED, 'no Init on a bootstrapped node');
    } finally {
      await withInit.close();
      await without.close();
    }
    await assert.rejects(fetchServerCertificate({ host: '127.0.0.1', port: without.port }, 1000));
  });

  it('fails to start on a port that is taken, saying so', async () => {
    const first = await serveNode({ attester, address: '127.0.0.1', port: 0 });
    try {
      await assert.rejects(
        serveNode({ attester, address: '127.0.0.1', port: first.port }),
        /No address added|EADDRINUSE/,
      );
    } finally {
      await first.close();
    }
  });
});
