// `sextant verify` against addresses that hold no Sextant agent (real listeners on loopback): each says "no Sextant
// agent at <addr>" with the reason, never the raw OpenSSL/gRPC text; and inline measurements count as unsigned.
import assert from 'node:assert/strict';
import { createSecureServer } from 'node:http2';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import { createEphemeralIdentity } from '../../../attestation/atls/index.js';
import { saveConfig } from '../../../cli/config/file.js';
import { runCliInProcess } from '../../harness/cli.js';
import { writeSignedWorkspace } from '../../harness/signed-workspace.js';
import { tempDir } from '../../harness/temp-dir.js';

/** A workspace whose config pins signed measurements and one EK CA (a self-signed certificate made here). */
async function signedWorkspace(dir: string): Promise<void> {
  const ekCa = { 'ek-ca.pem': (await createEphemeralIdentity('ek-ca')).certPem };
  const { config } = await writeSignedWorkspace(dir, { ekCa });
  await saveConfig(dir, config);
}

function listen(server: Server | ReturnType<typeof createSecureServer>): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : 0);
    });
  });
}

describe('sextant verify: an address without a Sextant agent', () => {
  const dir = tempDir('sextant-verify-');
  const servers: { close(): unknown }[] = [];
  const ports: Record<string, number> = {};
  before(async () => {
    await signedWorkspace(dir);
    const tls = await createEphemeralIdentity('not-an-agent');
    // an HTTP server on the port: answers bytes that are no TLS
    const tcp = createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    // TLS 1.3 with a certificate, but nothing behind it speaks HTTP/2 or gRPC
    const plainTls = createTlsServer({ key: tls.keyPem, cert: tls.certPem }, (s) => s.end());
    // HTTP/2 over TLS, but every path is 404: some other gRPC/HTTP service
    const h2 = createSecureServer({ key: tls.keyPem, cert: tls.certPem, allowHTTP1: false }, (_req, res) => {
      res.writeHead(404).end();
    });
    const closed = createServer();
    ports.tcp = await listen(tcp);
    ports.tls = await listen(plainTls);
    ports.h2 = await listen(h2);
    ports.refused = await listen(closed);
    await new Promise((r) => closed.close(r));
    servers.push(tcp, plainTls, h2);
  });
  after(() => {
    for (const s of servers) s.close();
  });

  const cases: [string, RegExp][] = [
    ['refused', /\(nothing listens on that port; the agent listens on initPort 9000 of each node\)/],
    ['tcp', /\(it does not speak TLS 1\.3; /],
    ['tls', /\(it speaks TLS but not the agent's attestation service; /],
    ['h2', /\(it speaks TLS but not the agent's attestation service; /],
  ];
  for (const [listener, reason] of cases) {
    it(`${listener}: names the address and why, exit 1`, async () => {
      const addr = `127.0.0.1:${ports[listener]}`;
      const r = await runCliInProcess(['verify', '--endpoint', addr, '--workspace', dir]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, new RegExp(`^not verified: no Sextant agent at ${addr.replace(/\./g, '\\.')} `));
      assert.match(r.stderr, reason);
      assert.doesNotMatch(r.stderr, /SSL|ssl3|ECONN|UNAVAILABLE|UNIMPLEMENTED|14 /, 'no raw transport text');
      assert.equal(r.stderr.split('\n').length, 2, 'one line');
    });
  }
});
