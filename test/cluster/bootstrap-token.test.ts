// The JoinService's bootstrap tokens against the REAL kube-apiserver + etcd + kube-controller-manager (v1.34.4, built
// by scripts/build-kubernetes.sh, set up by the real kubeadm; test/harness/kube-control-plane.ts on the host loopback):
// the agent's own client (agent/kubernetes) with the admin kubeconfig kubeadm wrote creates the token; it
// authenticates as system:bootstrap:<id> in kubeadm's node group, `kubeadm token list` reads it as one of its own, the
// bootstrap signer signs cluster-info with it (what kubeadm join's discovery checks); deleted, it stops
// authenticating; expired, the controller-manager's token cleaner removes it.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { credentialsFromKubeconfig, KubeApi, type KubeApiError } from '../../agent/kubernetes/api-client.js';
import { ApiBootstrapTokens, NODE_BOOTSTRAP_GROUP } from '../../agent/kubernetes/bootstrap-token.js';
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
    // exactly what launchJoinService does with kubeadm's admin kubeconfig
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
});
