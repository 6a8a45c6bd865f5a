import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { connect } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import {
  attestationService,
  attestedServerCredentials,
  channelUserData,
  createEphemeralIdentity,
  type EphemeralIdentity,
  openAttestedChannel,
} from '../../../attestation/atls/index.js';
import { AttestationServiceService } from '../../../gen/proto/attestation.js';
import { echoAttester, echoVerifier, tamperedEchoAttester } from '../../harness/echo-attestation.js';

async function startServer(identity: EphemeralIdentity, attester = echoAttester) {
  const server = new grpc.Server();
  server.addService(AttestationServiceService, attestationService(attester, identity));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', attestedServerCredentials(identity), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { server, port };
}

describe('attested TLS channel', () => {
  let identity: EphemeralIdentity;
  before(async () => {
    identity = await createEphemeralIdentity();
  });

  test('binds the attestation to the pinned server key', async () => {
    const { server, port } = await startServer(identity);
    try {
      const ch = await openAttestedChannel({ host: '127.0.0.1', port }, { verifier: echoVerifier });
      assert.ok(ch.serverCertificate.equals(identity.certDer));
      ch.close();
    } finally {
      server.forceShutdown();
    }
  });

  test('refuses a relayed document (bound to another TLS key)', async () => {
    const other = await createEphemeralIdentity();
    const relay = tamperedEchoAttester((doc) => {
      doc.userData = channelUserData('server', other.spkiDer);
    });
    const { server, port } = await startServer(identity, relay);
    try {
      await assert.rejects(
        openAttestedChannel({ host: '127.0.0.1', port }, { verifier: echoVerifier }),
        /verify: user data is not bound to this TLS key/,
      );
    } finally {
      server.forceShutdown();
    }
  });

  test('refuses a replayed document (old nonce)', async () => {
    const replay = tamperedEchoAttester((doc) => {
      doc.quote = Buffer.alloc(32, 7);
    });
    const { server, port } = await startServer(identity, replay);
    try {
      await assert.rejects(
        openAttestedChannel({ host: '127.0.0.1', port }, { verifier: echoVerifier }),
        /verify: nonce mismatch/,
      );
    } finally {
      server.forceShutdown();
    }
  });

  test('refuses TLS 1.2', async () => {
    const { server, port } = await startServer(identity);
    try {
      const err = await new Promise<Error>((resolve) => {
        const s = connect({
          host: '127.0.0.1',
          port,
          minVersion: 'TLSv1.2',
          maxVersion: 'TLSv1.2',
          rejectUnauthorized: false,
        });
        s.once('secureConnect', () => {
          s.destroy();
          resolve(new Error('connected'));
        });
        s.once('error', resolve);
      });
      assert.match(err.message, /protocol version|alert/i);
    } finally {
      server.forceShutdown();
    }
  });

  test('connection refused names the endpoint and stage', async () => {
    await assert.rejects(
      openAttestedChannel({ host: '127.0.0.1', port: 1 }, { verifier: echoVerifier, timeoutMs: 2000 }),
      /127\.0\.0\.1:1: connect: .*ECONNREFUSED/,
    );
  });
});
