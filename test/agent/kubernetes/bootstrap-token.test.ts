// Bootstrap tokens through the API, in-process against a loopback HTTPS server that checks the admin's client
// certificate the way kube-apiserver does (the real kube-apiserver: test/cluster/bootstrap-token.test.ts): the
// Secret is the one `kubeadm token create` writes, ids clash into a new id, deletes are idempotent, and errors name
// the call and the API's answer without the token.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { parse, stringify } from 'yaml';
import {
  ApiBootstrapTokens,
  JOIN_TOKEN_TTL_MS,
  NODE_BOOTSTRAP_GROUP,
} from '../../../agent/kubernetes/bootstrap-token.js';
import { credentialsFromKubeconfig, KubeApi, KubeApiError } from '../../../common/kube-api.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

interface Pki {
  caPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  clientCertPem: string;
  clientKeyPem: string;
}

async function keyPair(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der
    .toString('base64')
    .match(/.{1,64}/g)
    ?.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

/** A cluster CA, an API server certificate for 127.0.0.1 and an admin client certificate, as kubeadm makes them. */
async function makePki(): Promise<Pki> {
  const caKeys = await keyPair();
  const now = Date.now();
  const validity = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 3600_000) };
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=kubernetes',
    keys: caKeys,
    signingAlgorithm: ALG,
    ...validity,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const issue = async (serial: string, subject: string, extensions: x509.Extension[]) => {
    const keys = await keyPair();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject,
      issuer: ca.subject,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: ALG,
      ...validity,
      extensions,
    });
    return { certPem: cert.toString('pem'), keyPem: await pem(keys.privateKey) };
  };
  const server = await issue('02', 'CN=kube-apiserver', [
    new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }]),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
  ]);
  const client = await issue('03', 'CN=kubernetes-admin, O=kubeadm:cluster-admins', [
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
  ]);
  return {
    caPem: ca.toString('pem'),
    serverCertPem: server.certPem,
    serverKeyPem: server.keyPem,
    clientCertPem: client.certPem,
    clientKeyPem: client.keyPem,
  };
}

interface Seen {
  method: string;
  path: string;
  body: unknown;
  user: string;
}

type Answer = { status: number; body?: unknown } | 'hang';

/** A loopback API server: answers from `respond`, records each request and who made it (the client certificate). */
async function fakeApi(pki: Pki) {
  const seen: Seen[] = [];
  let respond: (req: Seen) => Answer = () => ({ status: 201, body: {} });
  const server: Server = createServer(
    {
      cert: pki.serverCertPem,
      key: pki.serverKeyPem,
      ca: pki.caPem,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => {
        text += c.toString();
      });
      req.on('end', () => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        const s: Seen = {
          method: req.method ?? '',
          path: req.url ?? '',
          body: text ? JSON.parse(text) : undefined,
          user: String(peer.subject?.CN ?? ''),
        };
        seen.push(s);
        const answer = respond(s);
        if (answer === 'hang') return;
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer.body ?? {}));
      });
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    seen,
    port,
    answer(fn: (req: Seen) => Answer) {
      respond = fn;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function status(code: number, reason: string, message: string) {
  return {
    status: code,
    body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code },
  };
}

function kubeconfig(pki: Pki, server: string): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server, 'certificate-authority-data': b64(pki.caPem) } }],
    contexts: [{ name: 'admin@c', context: { cluster: 'c', user: 'admin' } }],
    'current-context': 'admin@c',
    users: [
      {
        name: 'admin',
        user: { 'client-certificate-data': b64(pki.clientCertPem), 'client-key-data': b64(pki.clientKeyPem) },
      },
    ],
  });
}

const decode = (data: Record<string, string>) =>
  Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));

let pki: Pki;
let api: Awaited<ReturnType<typeof fakeApi>>;
let client: KubeApi;

before(async () => {
  pki = await makePki();
  api = await fakeApi(pki);
  // The default time limit: a loaded 2-core machine answers the loopback slowly. Only the 'no answer in time'
  // case uses a short one, on its own client.
  client = new KubeApi(
    credentialsFromKubeconfig(kubeconfig(pki, `https://127.0.0.1:${api.port}`), 'admin.conf'),
  );
});
after(async () => {
  client.close();
  await api.close();
});

describe('ApiBootstrapTokens.create', () => {
  it("posts the Secret kubeadm's token create writes, as the admin, and returns the token", async () => {
    api.seen.length = 0;
    api.answer(() => ({ status: 201, body: {} }));
    const now = Date.parse('2026-11-29T18:00:00.123Z');
    const tokens = new ApiBootstrapTokens(client, { now: () => now });
    const t = await tokens.create('sextant join ticket for w-0');
    assert.match(t.token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    assert.equal(t.token.slice(0, 6), t.id);
    assert.equal(t.expires.getTime(), now + JOIN_TOKEN_TTL_MS);
    const [req] = api.seen;
    assert.equal(req?.method, 'POST');
    assert.equal(req?.path, '/api/v1/namespaces/kube-system/secrets');
    assert.equal(req?.user, 'kubernetes-admin');
    const secret = req?.body as {
      metadata: { name: string; namespace: string };
      type: string;
      data: Record<string, string>;
    };
    assert.deepEqual(secret.metadata, { name: `bootstrap-token-${t.id}`, namespace: 'kube-system' });
    assert.equal(secret.type, 'bootstrap.kubernetes.io/token');
    assert.deepEqual(decode(secret.data), {
      description: 'sextant join ticket for w-0',
      'token-id': t.id,
      'token-secret': t.token.slice(7),
      expiration: '2026-11-29T18:30:00Z',
      'usage-bootstrap-authentication': 'true',
      'usage-bootstrap-signing': 'true',
      'auth-extra-groups': NODE_BOOTSTRAP_GROUP,
    });
  });

  it('every token is fresh: 200 tokens, 200 distinct ids and secrets', async () => {
    api.answer(() => ({ status: 201, body: {} }));
    const tokens = new ApiBootstrapTokens(client);
    // One after another over the keep-alive connection: 200 parallel TLS handshakes would test the machine's load,
    // and a failure would leave requests in flight that the next case counts.
    const made: { id: string; token: string }[] = [];
    for (let i = 0; i < 200; i++) made.push(await tokens.create('x'));
    assert.equal(new Set(made.map((t) => t.id)).size, 200);
    assert.equal(new Set(made.map((t) => t.token.slice(7))).size, 200);
  });

  it('an id that clashes with a live token is never overwritten: a new id is tried', async () => {
    api.seen.length = 0;
    let n = 0;
    api.answer(() =>
      n++ === 0
        ? status(409, 'AlreadyExists', 'secrets "bootstrap-token-abcdef" already exists')
        : { status: 201 },
    );
    const t = await new ApiBootstrapTokens(client).create('x');
    assert.equal(api.seen.length, 2);
    const names = api.seen.map((s) => (s.body as { metadata: { name: string } }).metadata.name);
    assert.notEqual(names[0], names[1]);
    assert.equal(names[1], `bootstrap-token-${t.id}`);
  });

  const failures: { name: string; answer: () => Answer; error: RegExp; timeoutMs?: number }[] = [
    {
      name: 'the admin may not create Secrets',
      answer: () => status(403, 'Forbidden', 'secrets is forbidden: User "kubernetes-admin" cannot create'),
      error:
        /^creating a bootstrap token: POST \/api\/v1\/namespaces\/kube-system\/secrets: 403 secrets is forbidden/,
    },
    {
      name: 'three clashes in a row',
      answer: () => status(409, 'AlreadyExists', 'already exists'),
      error: /^creating a bootstrap token: .*409 already exists/,
    },
    {
      name: 'an answer that is no Status',
      answer: () => ({ status: 500, body: 'boom' }),
      error: /^creating a bootstrap token: .*: 500 HTTP 500$/,
    },
    {
      name: 'no answer in time',
      answer: () => 'hang',
      error: /^creating a bootstrap token: POST .*: no answer within 1000 ms$/,
      timeoutMs: 1000,
    },
  ];
  for (const f of failures) {
    it(`fails naming the call when ${f.name}, never with the token`, async () => {
      api.seen.length = 0;
      api.answer(f.answer);
      const own = f.timeoutMs
        ? new KubeApi(
            credentialsFromKubeconfig(kubeconfig(pki, `https://127.0.0.1:${api.port}`), 'admin.conf'),
            { timeoutMs: f.timeoutMs },
          )
        : undefined;
      const err = await new ApiBootstrapTokens(own ?? client)
        .create('x')
        .then(
          () => assert.fail('created'),
          (e: Error) => e,
        )
        .finally(() => own?.close());
      assert.match(err.message, f.error);
      for (const s of api.seen) {
        const secret = decode((s.body as { data: Record<string, string> }).data)['token-secret'] ?? '';
        assert.ok(!err.message.includes(secret), 'the token secret is in the error');
      }
    });
  }
});

describe('ApiBootstrapTokens.delete', () => {
  it('deletes bootstrap-token-<id> in kube-system; one already gone is fine', async () => {
    api.seen.length = 0;
    api.answer((r) =>
      r.path.endsWith('gone00')
        ? status(404, 'NotFound', 'secrets "bootstrap-token-gone00" not found')
        : { status: 200 },
    );
    const tokens = new ApiBootstrapTokens(client);
    await tokens.delete('abc123');
    await tokens.delete('gone00');
    assert.deepEqual(
      api.seen.map((s) => `${s.method} ${s.path}`),
      [
        'DELETE /api/v1/namespaces/kube-system/secrets/bootstrap-token-abc123',
        'DELETE /api/v1/namespaces/kube-system/secrets/bootstrap-token-gone00',
      ],
    );
  });

  it('fails naming the token on any other answer, and refuses an id that is not one', async () => {
    api.answer(() => status(503, 'ServiceUnavailable', 'etcdserver: leader changed'));
    const tokens = new ApiBootstrapTokens(client);
    await assert.rejects(
      tokens.delete('abc123'),
      /^Error: deleting bootstrap token abc123: DELETE .*: 503 etcdserver: leader changed$/,
    );
    await assert.rejects(tokens.delete('../x'), /bootstrap token id: expected \[a-z0-9\]\{6\}/);
  });
});

describe('KubeApi: TLS both ways', () => {
  it('refuses an API server whose certificate the kubeconfig CA did not sign', async () => {
    const other = await makePki();
    const creds = credentialsFromKubeconfig(kubeconfig(pki, `https://127.0.0.1:${api.port}`), 'admin.conf');
    const wrong = new KubeApi({ ...creds, caPem: other.caPem }, { timeoutMs: 1000 });
    try {
      await assert.rejects(wrong.request('GET', '/readyz'), (err: Error) => {
        assert.ok(err instanceof KubeApiError);
        assert.equal(err.status, 0);
        assert.match(err.message, /^GET \/readyz: .*(certificate|self.signed)/i);
        return true;
      });
    } finally {
      wrong.close();
    }
  });
});

describe('credentialsFromKubeconfig', () => {
  const server = 'https://10.0.0.1:6443';
  const cases: { name: string; edit: (k: Record<string, unknown>) => unknown; error: RegExp }[] = [
    { name: 'not YAML', edit: () => '{{', error: /^admin\.conf: not valid YAML$/ },
    {
      name: 'no current context',
      edit: (k) => ({ ...k, 'current-context': undefined }),
      error: /^admin\.conf: current-context: missing$/,
    },
    {
      name: 'a current context not listed',
      edit: (k) => ({ ...k, 'current-context': 'other' }),
      error: /current-context names no context of the file/,
    },
    {
      name: 'a plain-HTTP server',
      edit: (k) => ({
        ...k,
        clusters: [
          { name: 'c', cluster: { server: 'http://10.0.0.1:6443', 'certificate-authority-data': 'eA==' } },
        ],
      }),
      error: /^admin\.conf: clusters\[0\]\.cluster\.server: expected an https:\/\/ URL$/,
    },
    {
      name: 'a client key in a file rather than embedded',
      edit: (k) => ({
        ...k,
        users: [{ name: 'admin', user: { 'client-certificate-data': 'eA==', 'client-key': '/etc/k.key' } }],
      }),
      error: /^admin\.conf: users\[0\]\.user\.client-key-data: missing$/,
    },
    {
      name: "the context's user not listed",
      edit: (k) => ({ ...k, users: [] }),
      error: /the current context's user is not in users/,
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.name}, never quoting a credential`, () => {
      const edited = c.edit(parse(kubeconfig(pki, server)) as Record<string, unknown>);
      const text = typeof edited === 'string' ? edited : stringify(edited);
      assert.throws(
        () => credentialsFromKubeconfig(text, 'admin.conf'),
        (err: Error) => {
          assert.match(err.message, c.error);
          assert.ok(!err.message.includes('PRIVATE KEY') && !err.message.includes(b64(pki.clientKeyPem)));
          return true;
        },
      );
    });
  }

  it('reads the server, CA and admin credentials of the current context', () => {
    const creds = credentialsFromKubeconfig(kubeconfig(pki, server), 'admin.conf');
    assert.equal(creds.server.href, `${server}/`);
    assert.equal(creds.caPem, pki.caPem);
    assert.equal(creds.certPem, pki.clientCertPem);
    assert.equal(creds.keyPem, pki.clientKeyPem);
  });
});

function b64(s: string): string {
  return Buffer.from(s).toString('base64');
}
