// One end of an attested TLS channel in its own process, so libfaketime can skew only that end's clock.
//   atls-peer.ts serve            → prints "port <n>", serves until killed
//   atls-peer.ts connect <port>   → prints "ok" or "error <message>", exits 0 / 1
import * as grpc from '@grpc/grpc-js';
import {
  attestationService,
  attestedServerCredentials,
  createEphemeralIdentity,
  openAttestedChannel,
} from '../../../attestation/atls/index.js';
import { AttestationServiceService } from '../../../gen/proto/attestation.js';
import { echoAttester, echoVerifier } from '../../harness/echo-attestation.js';

const [mode, arg] = process.argv.slice(2);
if (mode === 'serve') {
  const identity = await createEphemeralIdentity();
  const server = new grpc.Server();
  server.addService(AttestationServiceService, attestationService(echoAttester, identity));
  server.bindAsync('127.0.0.1:0', attestedServerCredentials(identity), (err, port) => {
    if (err) {
      console.log(`error ${err.message}`);
      process.exit(1);
    }
    console.log(`port ${port}`);
  });
} else if (mode === 'connect') {
  try {
    const ch = await openAttestedChannel(
      { host: '127.0.0.1', port: Number(arg) },
      { verifier: echoVerifier },
    );
    ch.close();
    console.log('ok');
  } catch (err) {
    console.log(`error ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
} else {
  console.error('usage: atls-peer.ts serve | connect <port>');
  process.exitCode = 2;
}
