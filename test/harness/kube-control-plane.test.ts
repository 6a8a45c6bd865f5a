// @tier system: root (the real Kubernetes control plane in a network namespace)
// The real control plane of the namespace tiers: real etcd + kube-apiserver + kube-controller-manager
// (v1.34.4, built from source), set up by the real kubeadm. Proves what Sextant relies on from it: a
// bootstrap token created through the API (the Secret `kubeadm token create` writes) authenticates as
// system:bootstrap:<id> until it expires or is deleted, and the real `kubeadm join` discovery accepts it
// with the pinned CA hash (the controller-manager signs cluster-info with it) and refuses a wrong pin.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kubernetesBinaries, type RealControlPlane, startRealControlPlane } from './kube-control-plane.js';
import { createTestNetwork, type TestNetwork } from './netns.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const pick = (n: number) =>
  Array.from(randomBytes(n))
    .map((b) => ALPHABET[b % 36])
    .join('');

/** The Secret `kubeadm token create` writes (bootstrap.kubernetes.io/token). */
function tokenSecret(id: string, secret: string, expires: Date) {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `bootstrap-token-${id}`, namespace: 'kube-system' },
    type: 'bootstrap.kubernetes.io/token',
    stringData: {
      'token-id': id,
      'token-secret': secret,
      'usage-bootstrap-authentication': 'true',
      'usage-bootstrap-signing': 'true',
      'auth-extra-groups': 'system:bootstrappers:kubeadm:default-node-token',
      expiration: expires.toISOString().replace(/\.\d+Z$/, 'Z'),
    },
  };
}

const REVIEW = { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' };

describe('real control plane in a namespace (kube-apiserver + etcd + kube-controller-manager)', {
  timeout: 240_000,
}, () => {
  let net: TestNetwork;
  let cp: RealControlPlane;

  before(async () => {
    kubernetesBinaries(); // build or reuse before the clock of the first test starts
    net = await createTestNetwork({ prefix: 'k8s', nodes: 2 });
    cp = await startRealControlPlane(net.nodes[0]!, {
      components: ['etcd', 'kube-apiserver', 'kube-controller-manager'],
    });
    // What kubeadm init does next: its config in the cluster, the bootstrap-token RBAC and cluster-info.
    for (const phase of [['upload-config', 'kubeadm'], ['upload-config', 'kubelet'], ['bootstrap-token']]) {
      const r = await cp.kubeadm(['init', 'phase', ...phase, '--config', '/etc/kubeadm.yaml']);
      assert.equal(r.exitCode, 0, `kubeadm init phase ${phase.join(' ')}: ${r.stderr}`);
    }
  });
  after(async () => {
    await cp?.stop();
    await net?.destroy();
  });

  it('a bootstrap token created through the API authenticates until deleted; a wrong secret or an expired token does not', async () => {
    const id = pick(6);
    const secret = pick(16);
    const created = await cp.api(
      'POST',
      '/api/v1/namespaces/kube-system/secrets',
      tokenSecret(id, secret, new Date(Date.now() + 10 * 60_000)),
    );
    assert.equal(created.status, 201, created.text);

    const review = await cp.api('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', REVIEW, {
      token: `${id}.${secret}`,
    });
    assert.equal(review.status, 201, review.text);
    const user = (review.body as { status: { userInfo: { username: string; groups: string[] } } }).status
      .userInfo;
    assert.equal(user.username, `system:bootstrap:${id}`);
    assert.ok(user.groups.includes('system:bootstrappers:kubeadm:default-node-token'), String(user.groups));

    const wrong = await cp.api('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', REVIEW, {
      token: `${id}.${pick(16)}`,
    });
    assert.equal(wrong.status, 401, wrong.text);

    const oldId = pick(6);
    const oldSecret = pick(16);
    const old = await cp.api(
      'POST',
      '/api/v1/namespaces/kube-system/secrets',
      tokenSecret(oldId, oldSecret, new Date(Date.now() - 60_000)),
    );
    assert.equal(old.status, 201, old.text);
    const expired = await cp.api('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', REVIEW, {
      token: `${oldId}.${oldSecret}`,
    });
    assert.equal(expired.status, 401, expired.text);

    const deleted = await cp.api('DELETE', `/api/v1/namespaces/kube-system/secrets/bootstrap-token-${id}`);
    assert.equal(deleted.status, 200, deleted.text);
    // The authenticator reads tokens through an informer: a deletion takes effect within moments.
    const until = Date.now() + 15_000;
    let gone = 0;
    while (gone !== 401 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 250));
      gone = (
        await cp.api('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', REVIEW, {
          token: `${id}.${secret}`,
        })
      ).status;
    }
    assert.equal(gone, 401, 'a deleted token still authenticates after 15 s');
  });

  it("the real kubeadm join discovery accepts a token created through the API with the CA's pin, and refuses a wrong pin", async () => {
    const id = pick(6);
    const secret = pick(16);
    const created = await cp.api(
      'POST',
      '/api/v1/namespaces/kube-system/secrets',
      tokenSecret(id, secret, new Date(Date.now() + 10 * 60_000)),
    );
    assert.equal(created.status, 201, created.text);
    // The controller-manager's bootstrapsigner signs cluster-info with every signing token.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ci = await cp.api('GET', '/api/v1/namespaces/kube-public/configmaps/cluster-info');
      if ((ci.body as { data?: Record<string, string> }).data?.[`jws-kubeconfig-${id}`]) break;
      assert.ok(
        Date.now() < deadline,
        `cluster-info never signed for ${id}:\n${cp.logTail('kube-controller-manager')}`,
      );
      await new Promise((r) => setTimeout(r, 500));
    }

    const spki = new X509Certificate(cp.caPem).publicKey.export({ type: 'spki', format: 'der' });
    const pin = `sha256:${createHash('sha256').update(spki).digest('hex')}`;
    const joiner = net.nodes[1]!;
    const root = await mkdtemp(join(tmpdir(), 'sextant-k8s-joiner-'));
    try {
      mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
      copyFileSync(join(kubernetesBinaries(), 'kubeadm'), join(root, 'usr/local/bin/kubeadm'));
      chmodSync(join(root, 'usr/local/bin/kubeadm'), 0o755);
      const join_ = (hash: string) => {
        writeFileSync(
          join(root, 'join.yaml'),
          `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
nodeRegistration: {name: worker-1, criSocket: "unix:///run/containerd/containerd.sock"}
discovery:
  bootstrapToken: {token: ${id}.${secret}, apiServerEndpoint: "${cp.address}:6443", caCertHashes: ["${hash}"]}
timeouts: {discovery: 20s}
`,
        );
        return joiner.exec(
          join(root, 'usr/local/bin/kubeadm'),
          [
            'join',
            'phase',
            'preflight',
            '--config',
            '/join.yaml',
            '--ignore-preflight-errors=all',
            '--rootfs',
            root,
            '-v=1',
          ],
          { timeoutMs: 90_000 },
        );
      };
      const ok = await join_(pin);
      assert.equal(ok.exitCode, 0, `${ok.stdout}\n${ok.stderr}`);
      assert.match(
        ok.stderr,
        /Cluster info signature and contents are valid and TLS certificate validates against pinned roots/,
      );
      assert.match(ok.stdout, /Reading configuration from the "kubeadm-config" ConfigMap/);

      const bad = await join_(`sha256:${'0'.repeat(64)}`);
      assert.notEqual(bad.exitCode, 0, bad.stdout);
      assert.match(bad.stderr, /none of the public keys "sha256:[0-9a-f]{64}" are pinned/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('real control plane on the host loopback (free ports, for in-process clients)', {
  timeout: 180_000,
}, () => {
  let cp: RealControlPlane;
  before(async () => {
    kubernetesBinaries();
    cp = await startRealControlPlane(undefined);
  });
  after(async () => {
    await cp?.stop();
  });

  it('serves the admin kubeconfig kubeadm wrote, to kubectl and to an in-process TLS client', async () => {
    assert.match(cp.server, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(cp.server, 'https://127.0.0.1:6443', 'a free port, not the default');
    const ready = execFileSync('kubectl', ['--kubeconfig', cp.adminKubeconfig, 'get', '--raw', '/readyz']);
    assert.equal(ready.toString().trim(), 'ok');

    const review = await new Promise<{ status?: number; text: string }>((done, fail) => {
      const req = request(
        `${cp.server}/apis/authentication.k8s.io/v1/selfsubjectreviews`,
        {
          method: 'POST',
          ca: cp.caPem,
          cert: cp.admin.certPem,
          key: cp.admin.keyPem,
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          let text = '';
          res.on('data', (c) => {
            text += c;
          });
          res.on('end', () => done({ status: res.statusCode, text }));
        },
      );
      req.on('error', fail);
      req.end(JSON.stringify(REVIEW));
    });
    assert.equal(review.status, 201, review.text);
    const user = (JSON.parse(review.text) as { status: { userInfo: { username: string; groups: string[] } } })
      .status.userInfo;
    assert.equal(user.username, 'kubernetes-admin');
    assert.ok(user.groups.includes('kubeadm:cluster-admins'), String(user.groups));
  });
});
