// The kubelet-client CSR approver in-process: the decision table (what a bootstrap-token holder may be approved for,
// given the node name its token's Secret records) and one pass against a fake API (binding deleted, Secrets read,
// the condition written through /approval, a lost race skipped). The real kube-apiserver + controller-manager:
// test/cluster/csr-approver.test.ts.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { NODE_NAME_KEY } from '../../../agent/kubernetes/bootstrap-token.js';
import {
  AUTO_APPROVE_BOOTSTRAP_BINDING,
  type Csr,
  CsrApprover,
  decide,
  KUBELET_CLIENT_SIGNER,
} from '../../../agent/kubernetes/csr-approver.js';
import { createLogger } from '../../../agent/log/index.js';
import { KubeApiError, type KubeApiRequester } from '../../../common/kube-api.js';
import { csrPem, kubeletCsrObject, kubeletSubject } from '../../harness/kubelet-csr.js';

const BOOT = 'system:bootstrap:abc123';

function csr(
  pem: string,
  over: { username?: string; usages?: string[]; signerName?: string; conditions?: { type: string }[] } = {},
): Csr {
  const o = kubeletCsrObject('csr-x', pem, over.usages);
  return {
    metadata: { name: 'csr-x', resourceVersion: '7' },
    spec: {
      ...o.spec,
      username: over.username ?? BOOT,
      ...(over.signerName ? { signerName: over.signerName } : {}),
    },
    ...(over.conditions ? { status: { conditions: over.conditions } } : {}),
  };
}

describe('csr approver: decision', () => {
  const pems: Record<string, string> = {};
  before(async () => {
    pems.w0 = await csrPem(kubeletSubject('worker-0'));
    pems.w0Reversed = await csrPem('CN=system:node:worker-0, O=system:nodes');
    pems.cp0 = await csrPem(kubeletSubject('cp-0'));
    pems.upper = await csrPem(kubeletSubject('Worker-0'));
    pems.masters = await csrPem('O=system:nodes, O=system:masters, CN=system:node:worker-0');
    pems.mastersOnly = await csrPem('O=system:masters, CN=system:node:worker-0');
    pems.ou = await csrPem('O=system:nodes, OU=x, CN=system:node:worker-0');
    pems.noO = await csrPem('CN=system:node:worker-0');
    pems.san = await csrPem(kubeletSubject('worker-0'), { dnsNames: ['cp-0'] });
  });

  const table: {
    name: string;
    pem: string;
    token: string | undefined;
    over?: Parameters<typeof csr>[1];
    want: 'approve' | 'ignore' | RegExp;
  }[] = [
    { name: 'the token’s node, kubelet usages', pem: 'w0', token: 'worker-0', want: 'approve' },
    { name: 'CN before O', pem: 'w0Reversed', token: 'worker-0', want: 'approve' },
    {
      name: 'with key encipherment',
      pem: 'w0',
      token: 'worker-0',
      over: { usages: ['key encipherment', 'digital signature', 'client auth'] },
      want: 'approve',
    },
    {
      name: 'another node’s name (a control plane’s)',
      pem: 'cp0',
      token: 'worker-0',
      want: /^subject: expected CN=system:node:worker-0 \(the token's node\), got .*CN=system:node:cp-0/,
    },
    {
      name: 'the name in another case',
      pem: 'upper',
      token: 'worker-0',
      want: /expected CN=system:node:worker-0/,
    },
    {
      name: 'a token that names no node',
      pem: 'w0',
      token: undefined,
      want: /^bootstrap token abc123 names no node$/,
    },
    { name: 'an empty node name', pem: 'w0', token: '', want: /names no node/ },
    {
      name: 'system:masters besides system:nodes',
      pem: 'masters',
      token: 'worker-0',
      want: /expected exactly CN=system:node:worker-0, O=system:nodes, got .*system:masters/,
    },
    {
      name: 'system:masters instead',
      pem: 'mastersOnly',
      token: 'worker-0',
      want: /expected exactly .*system:masters/,
    },
    { name: 'an extra OU', pem: 'ou', token: 'worker-0', want: /expected exactly .*OU=x/ },
    { name: 'no organization', pem: 'noO', token: 'worker-0', want: /expected exactly/ },
    {
      name: 'subject alternative names',
      pem: 'san',
      token: 'worker-0',
      want: /no subject alternative names/,
    },
    {
      name: 'server auth usage',
      pem: 'w0',
      token: 'worker-0',
      over: { usages: ['digital signature', 'client auth', 'server auth'] },
      want: /^usages: expected only client auth, digital signature, key encipherment; got server auth$/,
    },
    {
      name: 'no client auth',
      pem: 'w0',
      token: 'worker-0',
      over: { usages: ['digital signature'] },
      want: /^usages: expected client auth/,
    },
    {
      name: 'not a certificate request',
      pem: 'garbage',
      token: 'worker-0',
      want: /^request: not a PEM PKCS#10/,
    },
    {
      name: 'a node renewing its own (not a bootstrap user)',
      pem: 'cp0',
      token: 'worker-0',
      over: { username: 'system:node:cp-0' },
      want: 'ignore',
    },
    {
      name: 'a bootstrap-looking user with a bad id',
      pem: 'cp0',
      token: 'worker-0',
      over: { username: 'system:bootstrap:ABC123' },
      want: 'ignore',
    },
    {
      name: 'another signer',
      pem: 'cp0',
      token: 'worker-0',
      over: { signerName: 'kubernetes.io/kube-apiserver-client' },
      want: 'ignore',
    },
    {
      name: 'already approved',
      pem: 'cp0',
      token: 'worker-0',
      over: { conditions: [{ type: 'Approved' }] },
      want: 'ignore',
    },
    {
      name: 'already denied',
      pem: 'w0',
      token: 'worker-0',
      over: { conditions: [{ type: 'Denied' }] },
      want: 'ignore',
    },
  ];
  for (const c of table) {
    it(`${c.name}: ${c.want instanceof RegExp ? 'deny' : c.want}`, () => {
      const pem = c.pem === 'garbage' ? 'not a request' : pems[c.pem]!;
      const d = decide(csr(pem, c.over), c.token);
      if (c.want === 'approve') assert.deepEqual(d, { verdict: 'approve', nodeName: c.token });
      else if (c.want === 'ignore') assert.deepEqual(d, { verdict: 'ignore' });
      else {
        assert.equal(d.verdict, 'deny', JSON.stringify(d));
        assert.match((d as { reason: string }).reason, c.want);
      }
    });
  }
});

/** A fake API: canned answers per "METHOD path", every call recorded. */
class FakeApi implements KubeApiRequester {
  calls: { method: string; path: string; body?: unknown }[] = [];
  constructor(readonly answers: Record<string, unknown | KubeApiError>) {}
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    this.calls.push({ method, path, ...(body === undefined ? {} : { body }) });
    const a = this.answers[`${method} ${path.split('?')[0]}`];
    if (a instanceof KubeApiError) throw a;
    if (a === undefined) throw new KubeApiError(`${method} ${path}: 404`, 404, 'NotFound');
    return a as T;
  }
}

const CSRS = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
const BINDING = `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${AUTO_APPROVE_BOOTSTRAP_BINDING}`;
const secret = (name?: string) => ({
  data: name === undefined ? {} : { [NODE_NAME_KEY]: Buffer.from(name).toString('base64') },
});
const named = (c: Csr, name: string, username: string): Csr => ({
  ...c,
  metadata: { ...c.metadata, name },
  spec: { ...c.spec, username },
});

describe('csr approver: a pass against the API', () => {
  it('deletes the auto-approval binding, approves the token’s node, denies another name and a nameless token, leaves the rest', async () => {
    const w0 = csr(await csrPem(kubeletSubject('worker-0')));
    const items = [
      named(w0, 'good', 'system:bootstrap:aaaaaa'),
      named(csr(await csrPem(kubeletSubject('cp-0'))), 'steal', 'system:bootstrap:aaaaaa'),
      named(w0, 'nameless', 'system:bootstrap:bbbbbb'),
      named(w0, 'unknown-token', 'system:bootstrap:cccccc'),
      named(w0, 'renewal', 'system:node:worker-0'),
    ];
    const api = new FakeApi({
      [`DELETE ${BINDING}`]: {},
      [`GET ${CSRS}`]: { items },
      'GET /api/v1/namespaces/kube-system/secrets/bootstrap-token-aaaaaa': secret('worker-0'),
      'GET /api/v1/namespaces/kube-system/secrets/bootstrap-token-bbbbbb': secret(),
      [`PUT ${CSRS}/good/approval`]: {},
      [`PUT ${CSRS}/steal/approval`]: {},
      [`PUT ${CSRS}/nameless/approval`]: {},
    });
    const log = createLogger({ sink: 'memory' });
    let now = 1000;
    const approver = new CsrApprover(api, { log, bindingCheckMs: 60_000, now: () => now });
    const done = await approver.pass();
    assert.deepEqual(
      done.map((d) => [d.name, d.decision.verdict]),
      [
        ['good', 'approve'],
        ['steal', 'deny'],
        ['nameless', 'deny'],
      ],
    );
    assert.deepEqual(api.calls[0], { method: 'DELETE', path: BINDING });
    assert.equal(
      api.calls[1]?.path,
      `${CSRS}?fieldSelector=${encodeURIComponent(`spec.signerName=${KUBELET_CLIENT_SIGNER}`)}`,
    );
    const put = (n: string) =>
      api.calls.find((c) => c.method === 'PUT' && c.path === `${CSRS}/${n}/approval`)?.body as Csr & {
        status: { conditions: { type: string; status: string; reason: string; message: string }[] };
      };
    assert.equal(put('good').metadata.resourceVersion, '7', 'the update carries the version it judged');
    assert.deepEqual(
      put('good').status.conditions.map((c) => [c.type, c.status]),
      [['Approved', 'True']],
    );
    assert.match(put('steal').status.conditions[0]!.message, /expected CN=system:node:worker-0.*cp-0/);
    assert.equal(put('steal').status.conditions[0]!.type, 'Denied');
    assert.match(put('nameless').status.conditions[0]!.message, /names no node/);
    assert.equal(put('renewal'), undefined);
    assert.equal(put('unknown-token'), undefined);
    const lines = log.recent(100);
    assert.ok(lines.some((l) => l.includes(`deleted ClusterRoleBinding ${AUTO_APPROVE_BOOTSTRAP_BINDING}`)));
    assert.ok(lines.some((l) => l.includes('CSR steal from system:bootstrap:aaaaaa denied')));

    // the binding is looked at again only after bindingCheckMs; gone (404) is fine
    api.calls = [];
    api.answers[`DELETE ${BINDING}`] = new KubeApiError('gone', 404, 'NotFound');
    api.answers[`GET ${CSRS}`] = { items: [] };
    await approver.pass();
    assert.deepEqual(
      api.calls.map((c) => c.method),
      ['GET'],
    );
    now += 60_000;
    await approver.pass();
    assert.deepEqual(
      api.calls.map((c) => c.method),
      ['GET', 'DELETE', 'GET'],
    );
  });

  it('a CSR another control plane decided first (409) is skipped; other API failures name the CSR', async () => {
    const c = named(csr(await csrPem(kubeletSubject('worker-0'))), 'raced', 'system:bootstrap:aaaaaa');
    const answers: Record<string, unknown> = {
      [`DELETE ${BINDING}`]: {},
      [`GET ${CSRS}`]: { items: [c] },
      'GET /api/v1/namespaces/kube-system/secrets/bootstrap-token-aaaaaa': secret('worker-0'),
      [`PUT ${CSRS}/raced/approval`]: new KubeApiError('conflict', 409, 'Conflict'),
    };
    const log = createLogger({ sink: 'memory' });
    assert.deepEqual(await new CsrApprover(new FakeApi(answers), { log }).pass(), []);
    answers[`PUT ${CSRS}/raced/approval`] = new KubeApiError('PUT …: 403 forbidden', 403, 'Forbidden');
    await assert.rejects(
      new CsrApprover(new FakeApi(answers), { log }).pass(),
      /^Error: CSR raced: Approved: PUT …: 403 forbidden$/,
    );
    answers[`DELETE ${BINDING}`] = new KubeApiError('DELETE …: 403 forbidden', 403, 'Forbidden');
    await assert.rejects(
      new CsrApprover(new FakeApi(answers), { log }).pass(),
      /deleting ClusterRoleBinding kubeadm:node-autoapprove-bootstrap: DELETE …: 403 forbidden/,
    );
  });

  it('running: an unreachable API is said once, not per pass, and stop() ends the loop', async () => {
    const log = createLogger({ sink: 'memory' });
    const api = new FakeApi({ [`DELETE ${BINDING}`]: new KubeApiError('DELETE …: connect ECONNREFUSED', 0) });
    const approver = new CsrApprover(api, { log, intervalMs: 5 });
    approver.start();
    await new Promise((r) => setTimeout(r, 100));
    await approver.stop();
    const n = api.calls.length;
    assert.ok(n >= 3, `passes: ${n}`);
    const lines = log.recent(100);
    assert.equal(lines.filter((l) => l.includes('ECONNREFUSED')).length, 1, lines.join('\n'));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(api.calls.length, n, 'no pass after stop()');
  });
});
