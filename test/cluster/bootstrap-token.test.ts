// @tier system: root (the real Kubernetes control plane in a network namespace)
// The JoinService's bootstrap tokens against the REAL kube-apiserver + etcd + kube-controller-manager (v1.34.4, built
// by scripts/build-kubernetes.sh, set up by the real kubeadm; test/harness/kube-control-plane.ts on the host loopback):
// the agent's own client (agent/kubernetes) with the admin kubeconfig kubeadm wrote creates the token; it
// authenticates as system:bootstrap:<id> in kubeadm's node group, `kubeadm token list` reads it as one of its own, the
// bootstrap signer signs cluster-info with it (what kubeadm join's discovery checks); deleted, it stops
// authenticating; expired, the controller-manager's token cleaner removes it. And the control-plane join the way the
// agent runs it — real `kubeadm join` with Sextant's JoinConfiguration (no certificate key, download-certs skipped),
// the shared certificates written from what a ticket carries — gets through preflight and control-plane-prepare.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import { caCertHash } from '../../agent/kubeadm/ca-hash.js';
import { joinConfiguration } from '../../agent/kubeadm/config.js';
import {
  readControlPlaneCertificates,
  writeControlPlaneCertificates,
} from '../../agent/kubeadm/control-plane-certs.js';
import { ApiBootstrapTokens, NODE_BOOTSTRAP_GROUP } from '../../agent/kubernetes/bootstrap-token.js';
import { credentialsFromKubeconfig, KubeApi, type KubeApiError } from '../../common/kube-api.js';
import {
  kubernetesBinaries,
  type RealControlPlane,
  startRealControlPlane,
} from '../harness/kube-control-plane.js';

const REVIEW = { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' };

/** Who the API server says a bearer token is (HTTP status, and the user on 201). */
function whoIs(
  cp: RealControlPlane,
  token: string,
): Promise<{ status: number; user?: string; groups?: string[] }> {
  return new Promise((done, fail) => {
    const req = request(
      `${cp.server}/apis/authentication.k8s.io/v1/selfsubjectreviews`,
      {
        method: 'POST',
        ca: cp.caPem,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status !== 201) return done({ status });
          const info = (JSON.parse(text) as { status: { userInfo: { username: string; groups: string[] } } })
            .status.userInfo;
          done({ status, user: info.username, groups: info.groups });
        });
      },
    );
    req.on('error', fail);
    req.end(JSON.stringify(REVIEW));
  });
}

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

describe('bootstrap tokens through the real kube-apiserver', { timeout: 300_000 }, () => {
  let cp: RealControlPlane;
  let api: KubeApi;
  before(async () => {
    kubernetesBinaries(); // build or reuse before the first test's clock starts
    cp = await startRealControlPlane(undefined, {
      components: ['etcd', 'kube-apiserver', 'kube-controller-manager'],
    });
    // What kubeadm init does next: its config in the cluster, the bootstrap-token RBAC and cluster-info.
    for (const phase of [['upload-config', 'kubeadm'], ['upload-config', 'kubelet'], ['bootstrap-token']]) {
      const r = await cp.kubeadm(['init', 'phase', ...phase, '--config', '/etc/kubeadm.yaml']);
      assert.equal(r.exitCode, 0, `kubeadm init phase ${phase.join(' ')}: ${r.stderr}`);
    }
    // exactly what agent/main.ts startJoinService does with kubeadm's admin kubeconfig
    api = new KubeApi(credentialsFromKubeconfig(await readFile(cp.adminKubeconfig, 'utf8'), 'admin.conf'));
  });
  after(async () => {
    api?.close();
    await cp?.stop();
  });

  it('a join token authenticates in kubeadm’s node group, is one of kubeadm’s own, signs cluster-info, and stops when deleted', async () => {
    const tokens = new ApiBootstrapTokens(api);
    const t = await tokens.create('sextant join ticket for w-0');
    const who = await whoIs(cp, t.token);
    assert.equal(who.status, 201);
    assert.equal(who.user, `system:bootstrap:${t.id}`);
    assert.ok(who.groups?.includes(NODE_BOOTSTRAP_GROUP), String(who.groups));

    const list = await cp.kubeadm(['token', 'list', '--kubeconfig', '/etc/kubernetes/admin.conf']);
    assert.equal(list.exitCode, 0, list.stderr);
    const row = list.stdout.split('\n').find((l) => l.startsWith(`${t.id}.`));
    assert.ok(row, list.stdout);
    assert.match(
      row,
      /authentication,signing\s+sextant join ticket for w-0\s+system:bootstrappers:kubeadm:default-node-token/,
    );
    // kubeadm shows the TTL left: under the 30 minutes a join token lives
    assert.match(row, /\s(2\dm|30m)\s/);

    const signed = (ci: { data?: Record<string, string> }) => Boolean(ci.data?.[`jws-kubeconfig-${t.id}`]);
    const clusterInfo = () =>
      api.request<{ data?: Record<string, string> }>(
        'GET',
        '/api/v1/namespaces/kube-public/configmaps/cluster-info',
      );
    await eventually('cluster-info signed with the token', clusterInfo, signed, 60_000);

    await tokens.delete(t.id);
    // refused once kube-apiserver's 10 s cache of the successful authentication above runs out
    await eventually(
      'the deleted token refused',
      () => whoIs(cp, t.token),
      (w) => w.status === 401,
      15_000,
    );
    await eventually('the signature dropped', clusterInfo, (ci) => !signed(ci), 60_000);
    // deleting again (a confirmation retried) is not an error
    await tokens.delete(t.id);
  });

  it("a token nobody used expires, and kubeadm's token cleaner removes its Secret", async () => {
    const t = await new ApiBootstrapTokens(api, { ttlMs: 2_000 }).create('sextant join ticket for w-1');
    assert.equal((await whoIs(cp, t.token)).status, 201);
    await eventually(
      'the expired token Secret removed',
      () =>
        api
          .request('GET', `/api/v1/namespaces/kube-system/secrets/bootstrap-token-${t.id}`)
          .then(() => 200)
          .catch((err: KubeApiError) => err.status),
      (status) => status === 404,
      60_000,
    );
    // kube-apiserver caches a successful token authentication for 10 s (TokenSuccessCacheTTL): then it is refused
    await eventually(
      'the expired token refused',
      () => whoIs(cp, t.token),
      (w) => w.status === 401,
      15_000,
    );
  });

  it('real kubeadm join --control-plane with the shared certificates from the ticket: no certificate key, no download-certs', async () => {
    const port = new URL(cp.server).port;
    const token = (await new ApiBootstrapTokens(api).create('sextant join ticket for cp-1')).token;
    const hash = caCertHash(cp.caPem);
    const signed = (ci: { data?: Record<string, string> }) =>
      Boolean(ci.data?.[`jws-kubeconfig-${token.slice(0, 6)}`]);
    await eventually(
      'cluster-info signed with the token',
      () =>
        api.request<{ data?: Record<string, string> }>(
          'GET',
          '/api/v1/namespaces/kube-public/configmaps/cluster-info',
        ),
      signed,
      60_000,
    );
    // Sextant's JoinConfiguration for a control plane; only the waits are cut: no kubelet (and so no etcd Pod) runs
    // here, so kubeadm is expected to stop at check-etcd, after everything the handed-over certificates matter for.
    const doc = parseDocument(
      joinConfiguration({
        nodeName: 'cp-1',
        nodeIp: '192.0.2.2',
        apiServerEndpoint: `127.0.0.1:${port}`,
        token,
        caCertHashes: [hash],
        controlPlane: { advertiseAddress: '192.0.2.2', bindPort: 6443 },
      }),
    );
    assert.deepEqual((doc.toJS() as { skipPhases?: string[] }).skipPhases, [
      'control-plane-prepare/download-certs',
    ]);
    doc.setIn(['timeouts', 'etcdAPICall'], '5s');
    // check-etcd looks for the etcd Pods through the API for this long
    doc.setIn(['timeouts', 'kubernetesAPICall'], '20s');
    doc.setIn(['timeouts', 'tlsBootstrap'], '5s');
    const joiner = async (withCertificates: boolean) => {
      const root = await mkdtemp(join(tmpdir(), 'sextant-k8s-cp-joiner-'));
      mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
      await copyFile(join(kubernetesBinaries(), 'kubeadm'), join(root, 'usr/local/bin/kubeadm'));
      writeFileSync(join(root, 'join.yaml'), doc.toString(), { mode: 0o600 });
      if (withCertificates) {
        await writeControlPlaneCertificates(
          join(root, 'etc/kubernetes/pki'),
          await readControlPlaneCertificates(join(cp.rootfs, 'etc/kubernetes/pki')),
        );
      }
      // kubeadm's control-plane preflight needs a CRI endpoint (its image pull check, which then fails and is
      // ignored: no registry here): the host's containerd, listening inside the joiner's root.
      const containerd = spawn(
        'containerd',
        [
          '--address',
          join(root, 'run/containerd/containerd.sock'),
          '--root',
          join(root, 'var/lib/containerd'),
          '--state',
          join(root, 'run/containerd/state'),
        ],
        { stdio: 'ignore' },
      );
      let r: Awaited<ReturnType<RealControlPlane['kubeadm']>>;
      try {
        await eventually(
          'containerd listening',
          async () => existsSync(join(root, 'run/containerd/containerd.sock')),
          (up) => up,
          15_000,
        );
        r = await cp.kubeadm(
          ['join', '--config', '/join.yaml', '--ignore-preflight-errors=all', '-v=1'],
          root,
        );
      } finally {
        containerd.kill('SIGKILL');
      }
      return { root, out: `${r.stdout}\n${r.stderr}`, exitCode: r.exitCode };
    };

    const bare = await joiner(false);
    try {
      assert.notEqual(bare.exitCode, 0);
      assert.match(
        bare.out,
        /One or more conditions for hosting a new control plane instance is not satisfied/,
      );
      assert.match(
        bare.out,
        /The certificates that must be shared among control plane instances are provided/,
      );
    } finally {
      await rm(bare.root, { recursive: true, force: true });
    }

    const ok = await joiner(true);
    try {
      assert.notEqual(ok.exitCode, 0, 'no kubelet here: kubeadm cannot finish');
      assert.match(ok.out, /error execution phase check-etcd/, ok.out.slice(-3000));
      assert.doesNotMatch(ok.out, /download-certs|kubeadm-certs/);
      // kubeadm took the handed-over CAs and service-account key instead of making its own
      for (const ca of ['ca', 'front-proxy-ca', 'etcd/ca']) {
        assert.match(
          ok.out,
          new RegExp(`Using the existing CA certificate "/etc/kubernetes/pki/${ca}.crt"`),
          ca,
        );
      }
      assert.match(ok.out, /\[certs\] Using the existing "sa" key/);
      const pki = join(ok.root, 'etc/kubernetes/pki');
      // the node's own certificates signed by the handed-over CA; the CA itself unchanged
      assert.equal(caCertHash(await readFile(join(pki, 'ca.crt'))), hash);
      for (const f of [
        'apiserver.crt',
        'apiserver-kubelet-client.crt',
        'front-proxy-client.crt',
        'etcd/peer.crt',
      ]) {
        assert.ok(existsSync(join(pki, f)), f);
      }
      assert.ok(existsSync(join(ok.root, 'etc/kubernetes/manifests/kube-apiserver.yaml')));
    } finally {
      await rm(ok.root, { recursive: true, force: true });
    }
  });
});
