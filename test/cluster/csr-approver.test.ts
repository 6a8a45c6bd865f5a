// @tier system: root (the real Kubernetes control plane in a network namespace)
// The kubelet-client CSR approver against the REAL kube-apiserver + etcd + kube-controller-manager (v1.34.4, built
// by scripts/build-kubernetes.sh, set up by the real kubeadm; test/harness/kube-control-plane.ts on the host
// loopback), with kubeadm's bootstrap-token RBAC as `kubeadm init` leaves it. First the hole: with kubeadm's
// kubeadm:node-autoapprove-bootstrap binding, the controller-manager approves ANY bootstrap-token holder's CSR for
// system:node:cp-0. Then the agent's approver deletes the binding: a token the JoinService issued for worker-0 gets
// worker-0's kubelet client certificate (signed by the controller-manager with the cluster CA), the same token asking
// for cp-0 is denied with the reason, a CSR nobody judges stays pending (nothing else approves it any more), and a
// non-bootstrap user's CSR is left to the controller-manager's own approvers.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { ApiBootstrapTokens } from '../../agent/kubernetes/bootstrap-token.js';
import {
  AUTO_APPROVE_BOOTSTRAP_BINDING,
  type Csr,
  CsrApprover,
  removeBootstrapAutoApproval,
} from '../../agent/kubernetes/csr-approver.js';
import { createLogger } from '../../agent/log/index.js';
import { credentialsFromKubeconfig, KubeApi } from '../../common/kube-api.js';
import { x509 } from '../../common/x509.js';
import {
  kubernetesBinaries,
  type RealControlPlane,
  startRealControlPlane,
} from '../harness/kube-control-plane.js';
import { csrPem, kubeletCsrObject, kubeletSubject } from '../harness/kubelet-csr.js';

const CSRS = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
const BINDING = `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${AUTO_APPROVE_BOOTSTRAP_BINDING}`;

type CsrState = Omit<Csr, 'status'> & {
  status?: { certificate?: string; conditions?: { type: string; reason?: string; message?: string }[] };
};

async function eventually<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000) {
  const until = Date.now() + ms;
  let last = await probe();
  while (!ok(last)) {
    assert.ok(Date.now() < until, `${what} not within ${ms} ms (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 250));
    last = await probe();
  }
  return last;
}

describe('kubelet client CSRs approved by node name against the real kube-apiserver', {
  timeout: 300_000,
}, () => {
  let cp: RealControlPlane;
  let api: KubeApi;
  let tokens: ApiBootstrapTokens;
  const log = createLogger({ sink: 'memory' });
  let n = 0;

  /** Posts a kubelet's CSR for `subject` as the holder of `token` (what kubelet TLS bootstrap does). */
  async function postAsToken(token: string, subject: string, usages?: string[]): Promise<string> {
    const name = `csr-${++n}-${token.slice(0, 6)}`;
    const r = await cp.api('POST', CSRS, kubeletCsrObject(name, await csrPem(subject), usages), { token });
    assert.equal(r.status, 201, r.text);
    return name;
  }
  const state = (name: string) => api.request<CsrState>('GET', `${CSRS}/${name}`);
  const conditions = (s: CsrState) => (s.status?.conditions ?? []).map((c) => c.type);

  before(async () => {
    kubernetesBinaries(); // build or reuse before the first test's clock starts
    cp = await startRealControlPlane(undefined, {
      components: ['etcd', 'kube-apiserver', 'kube-controller-manager'],
    });
    // What kubeadm init does next: its config in the cluster, the bootstrap-token RBAC (incl. auto-approval).
    for (const phase of [['upload-config', 'kubeadm'], ['upload-config', 'kubelet'], ['bootstrap-token']]) {
      const r = await cp.kubeadm(['init', 'phase', ...phase, '--config', '/etc/kubeadm.yaml']);
      assert.equal(r.exitCode, 0, `kubeadm init phase ${phase.join(' ')}: ${r.stderr}`);
    }
    // exactly what agent/main.ts startJoinService does with kubeadm's admin kubeconfig
    api = new KubeApi(credentialsFromKubeconfig(await readFile(cp.adminKubeconfig, 'utf8'), 'admin.conf'));
    tokens = new ApiBootstrapTokens(api);
  });
  after(async () => {
    api?.close();
    await cp?.stop();
  });

  it('the hole, as kubeadm leaves it: the controller-manager approves a worker token’s CSR for system:node:cp-0', async () => {
    assert.equal((await cp.api('GET', BINDING)).status, 200, 'kubeadm made the auto-approval binding');
    const t = await tokens.create('sextant join ticket for worker-9', 'worker-9');
    const name = await postAsToken(t.token, kubeletSubject('cp-0'));
    const s = await eventually(
      'the controller-manager approving and signing it',
      () => state(name),
      (v) => Boolean(v.status?.certificate),
      60_000,
    );
    assert.deepEqual(conditions(s), ['Approved']);
    assert.equal(s.status?.conditions?.[0]?.reason, 'AutoApproved');
  });

  it('with the binding deleted and the approver running: worker-0 approved and issued, cp-0 denied with the reason, nothing else approves', async () => {
    assert.equal(await removeBootstrapAutoApproval(api), true);
    assert.equal(await removeBootstrapAutoApproval(api), false, 'again: already gone, not an error');
    assert.equal((await cp.api('GET', BINDING)).status, 404);
    const t = await tokens.create('sextant join ticket for worker-0', 'worker-0');
    const nameless = await tokens.create('made without a node name');

    const steal = await postAsToken(t.token, kubeletSubject('cp-0'));
    const good = await postAsToken(t.token, kubeletSubject('worker-0'), [
      'digital signature',
      'key encipherment',
      'client auth',
    ]);
    const noName = await postAsToken(nameless.token, kubeletSubject('worker-0'));
    // an admin's (not a bootstrap token's) kubelet-client CSR: not the approver's to judge
    const adminPosted = `csr-admin-${++n}`;
    assert.equal(
      (await cp.api('POST', CSRS, kubeletCsrObject(adminPosted, await csrPem(kubeletSubject('cp-0')))))
        .status,
      201,
    );

    // Before any approver pass: nothing approves them any more (the controller-manager would have within ms).
    await new Promise((r) => setTimeout(r, 8000));
    for (const name of [steal, good, noName])
      assert.deepEqual(conditions(await state(name)), [], `${name} left pending by the controller-manager`);

    const approver = new CsrApprover(api, { log });
    const done = await approver.pass();
    assert.deepEqual(
      done.map((d) => [d.name, d.decision.verdict]).sort(),
      [
        [good, 'approve'],
        [noName, 'deny'],
        [steal, 'deny'],
      ].sort(),
    );

    const issued = await eventually(
      'worker-0 certificate signed by the controller-manager',
      () => state(good),
      (v) => Boolean(v.status?.certificate),
      60_000,
    );
    assert.deepEqual(conditions(issued), ['Approved']);
    assert.equal(issued.status?.conditions?.[0]?.reason, 'SextantNodeNameMatches');
    const cert = new x509.X509Certificate(
      Buffer.from(issued.status!.certificate!, 'base64').toString('utf8'),
    );
    assert.equal(cert.subjectName.getField('CN')[0], 'system:node:worker-0');
    assert.deepEqual(cert.subjectName.getField('O'), ['system:nodes']);
    const ca = new x509.X509Certificate(cp.caPem);
    assert.equal(cert.issuer, ca.subject);
    assert.ok(
      await cert.verify({ publicKey: ca.publicKey, signatureOnly: true }),
      'signed by the cluster CA',
    );

    const denied = await state(steal);
    assert.deepEqual(conditions(denied), ['Denied']);
    assert.equal(denied.status?.conditions?.[0]?.reason, 'SextantNodeNameMismatch');
    assert.match(
      denied.status?.conditions?.[0]?.message ?? '',
      /^subject: expected CN=system:node:worker-0 \(the token's node\), got .*CN=system:node:cp-0/,
    );
    assert.match((await state(noName)).status?.conditions?.[0]?.message ?? '', /names no node/);

    // Denied stays denied: the controller-manager never signs it, a later pass does not touch it.
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await state(steal)).status?.certificate, undefined);
    assert.equal((await state(noName)).status?.certificate, undefined);
    assert.deepEqual(await approver.pass(), []);
    // A non-bootstrap requester is not the approver's: the controller-manager judged it by the requester's own RBAC
    // (the admin may ask for any node client certificate, as a node may renew its own).
    assert.deepEqual(
      ((await state(adminPosted)).status?.conditions ?? []).map((c) => [c.type, c.reason]),
      [['Approved', 'AutoApproved']],
    );
  });
});
