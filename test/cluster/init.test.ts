// @tier system: swtpm (agents on loopback)
// kubeadm in this test is the stand-in (test/kubeadm): real PKI, config decoding and preflight, its own API server; no kubelet, no control-plane Pods.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { InitFailedError, InitRefusedError, initCluster } from '../../cli/init/init-cluster.js';
import { deriveClusterId, deriveMeasurementSecret } from '../../common/keys.js';
import { type AgentNode, startAgentNode, testCa } from '../harness/agent-node.js';
import { initRequest, kubeadmStandin, swtpmMeasurements, testVerifier } from '../harness/cluster-kit.js';
import type { SwtpmCa } from '../harness/swtpm.js';

const run = promisify(execFile);

async function pcr15(node: AgentNode): Promise<string> {
  const { stdout } = await run('tpm2_pcrread', ['sha256:15'], {
    env: { ...process.env, TPM2TOOLS_TCTI: node.tpm.tcti },
  });
  return /15\s*:\s*0x([0-9A-F]+)/i.exec(stdout)?.[1]?.toLowerCase() ?? '';
}

function endpoint(node: AgentNode) {
  return { host: '127.0.0.1', port: node.initPort };
}

describe('init: the first node becomes a cluster', () => {
  let ca: SwtpmCa;
  before(async () => {
    ca = await testCa();
    kubeadmStandin();
  });

  describe('happy path', () => {
    let node: AgentNode;
    before(async () => {
      node = await startAgentNode();
    });
    after(async () => {
      await node.stop();
    });

    test('the CLI inits the node: kubeconfig, cluster ID in PCR 15, node state persisted', async () => {
      const { request, masterKey, masterSalt } = initRequest(node.initSecret);
      const progress: string[] = [];
      const result = await initCluster({
        endpoint: endpoint(node),
        verifier: testVerifier(ca),
        request,
        onLog: (l) => progress.push(l),
      });
      assert.ok(
        progress.some((l) => /kubeadm init/.test(l)),
        'progress lines streamed',
      );
      const clusterId = deriveClusterId(
        deriveMeasurementSecret({ key: masterKey, salt: masterSalt }),
        request.measurementSalt,
      );
      assert.ok(result.clusterId.equals(clusterId));
      assert.equal(result.endpoint, `127.0.0.1:${node.apiServerPort}`);

      const kubeconfig = join(node.dir, 'admin.conf');
      await writeFile(kubeconfig, result.kubeconfig, { mode: 0o600 });
      const { stdout } = await run('kubectl', ['config', 'view', '--kubeconfig', kubeconfig, '-o', 'json']);
      const view = JSON.parse(stdout) as { clusters: { cluster: { server: string } }[] };
      assert.equal(view.clusters[0]?.cluster.server, `https://127.0.0.1:${node.apiServerPort}`);

      const expected = createHash('sha256').update(Buffer.alloc(32)).update(clusterId).digest('hex');
      assert.equal(await pcr15(node), expected);

      const statePath = join(node.stateDir, 'node-state.json');
      const state = JSON.parse(await readFile(statePath, 'utf8')) as Record<string, string>;
      assert.equal(state.phase, 'bootstrapped');
      assert.equal(state.clusterId, clusterId.toString('hex'));
      assert.equal((await stat(statePath)).mode & 0o777, 0o600);
      assert.equal((await stat(join(node.stateDir, 'cluster-secrets.json'))).mode & 0o777, 0o600);
      await node.waitFor((l) => l.msg === 'JoinService listening');
      // No secret in any log line.
      const logs = JSON.stringify(node.lines);
      for (const secret of [masterKey, masterSalt, node.initSecret]) {
        assert.ok(!logs.includes(secret.toString('hex')) && !logs.includes(secret.toString('base64')));
      }
    });

    test('a second init by another owner (another master secret) is refused with FAILED_PRECONDITION and changes nothing', async () => {
      const before15 = await pcr15(node);
      await assert.rejects(
        initCluster({
          endpoint: endpoint(node),
          verifier: testVerifierWithPcr15(ca, before15),
          request: initRequest(node.initSecret).request,
        }),
        (err: InitRefusedError) =>
          err.code === grpc.status.FAILED_PRECONDITION &&
          /node is already initialized, by another owner/.test(err.message),
      );
      assert.equal(await pcr15(node), before15);
    });
  });

  describe('bad input leaves the node initializable', () => {
    let node: AgentNode;
    before(async () => {
      // Ten inits from one address within seconds, each with its own attested handshake: more than the node's
      // per-peer burst (10 calls, then 2/s; test/agent/joinservice/call-limits.test.ts covers that limit). Raised
      // here so each case meets the refusal it is about, not RESOURCE_EXHAUSTED.
      node = await startAgentNode({ env: { SEXTANT_JOIN_BURST_PER_PEER: '200' } });
    });
    after(async () => {
      await node.stop();
    });

    async function assertUntouched() {
      assert.equal(await pcr15(node), '00'.repeat(32));
      await assert.rejects(stat(join(node.stateDir, 'node-state.json')), { code: 'ENOENT' });
    }

    test('wrong init secret → PERMISSION_DENIED', async () => {
      await assert.rejects(
        initCluster({
          endpoint: endpoint(node),
          verifier: testVerifier(ca),
          request: initRequest(Buffer.from('wrong')).request,
        }),
        (err: InitRefusedError) =>
          err.code === grpc.status.PERMISSION_DENIED && /init secret/.test(err.message),
      );
      await assertUntouched();
    });

    test('wrong measurements on the CLI side: the CLI refuses to send, naming the PCR', async () => {
      const bad = swtpmMeasurements({ 4: { expected: 'ab'.repeat(32), warnOnly: false } });
      await assert.rejects(
        initCluster({
          endpoint: endpoint(node),
          verifier: testVerifier(ca, bad),
          request: initRequest(node.initSecret).request,
        }),
        /verify: .*PCR 4/,
      );
      await assertUntouched();
    });

    const malformed: [string, Parameters<typeof initRequest>[1], RegExp][] = [
      ['empty version', { kubernetesVersion: '' }, /kubernetes_version/],
      ['bad service CIDR', { serviceCidr: '10.96.0.0/99' }, /service_cidr/],
      ['bad SAN', { apiserverCertSans: ['not a name!'] }, /apiserver_cert_sans\[0\]/],
      ['short measurement salt', { measurementSalt: Buffer.alloc(5) }, /measurement_salt/],
      ['KMS URI', { keySource: { $case: 'kmsUri', value: 'gcp-kms://x' } }, /kms_uri/],
      ['no measurements', { measurements: Buffer.alloc(0) }, /measurements/],
    ];
    for (const [what, override, pattern] of malformed) {
      test(`malformed field: ${what}`, async () => {
        await assert.rejects(
          initCluster({
            endpoint: endpoint(node),
            verifier: testVerifier(ca),
            request: initRequest(node.initSecret, override).request,
          }),
          (err: InitRefusedError) => err instanceof InitRefusedError && pattern.test(err.message),
        );
        await assertUntouched();
      });
    }

    test('component hash mismatch names the component', async () => {
      const { request } = initRequest(node.initSecret);
      request.kubernetesComponents[0]!.sha256 = '0'.repeat(64);
      await assert.rejects(
        initCluster({ endpoint: endpoint(node), verifier: testVerifier(ca), request }),
        (err: InitRefusedError) =>
          err.code === grpc.status.INVALID_ARGUMENT && /kubeadm.*(hash|SHA-256|sha256)/i.test(err.message),
      );
      await assertUntouched();
      await assert.rejects(stat(join(node.rootfs, 'usr/local/bin/kubeadm')), { code: 'ENOENT' });
    });

    test('unreachable component URL names the component', async () => {
      const { request } = initRequest(node.initSecret);
      request.kubernetesComponents[0]!.url = 'http://127.0.0.1:1/kubeadm';
      await assert.rejects(
        initCluster({ endpoint: endpoint(node), verifier: testVerifier(ca), request }),
        (err: InitRefusedError) =>
          err.code === grpc.status.INVALID_ARGUMENT && /127\.0\.0\.1:1\/kubeadm/.test(err.message),
      );
      await assertUntouched();
    });
  });

  test('kubeadm failure: the node streams its logs back and is marked for reset', async () => {
    const node = await startAgentNode({ env: { KUBEADM_STANDIN_FAIL_PHASE: 'certs' } });
    try {
      const err = await initCluster({
        endpoint: endpoint(node),
        verifier: testVerifier(ca),
        request: initRequest(node.initSecret).request,
      }).then(
        () => assert.fail('init succeeded'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof InitFailedError, String(err));
      assert.equal(err.step, 'kubeadm-init');
      assert.match(err.message, /certs/);
      assert.ok(
        err.logs.some((l) => /kubeadm/.test(l)),
        'agent logs came back',
      );
      const state = JSON.parse(await readFile(join(node.stateDir, 'node-state.json'), 'utf8')) as Record<
        string,
        string
      >;
      assert.equal(state.phase, 'reset-required');
      assert.equal(state.failedStep, 'kubeadm-init');
    } finally {
      await node.stop();
    }
  });

  test('agent killed mid-init: same boot refuses to reuse it, a reboot converges to an initializable node', async () => {
    const node = await startAgentNode({ env: { KUBEADM_STANDIN_HANG_PHASE: 'wait-control-plane' } });
    try {
      const pending = initCluster({
        endpoint: endpoint(node),
        verifier: testVerifier(ca),
        request: initRequest(node.initSecret).request,
      }).catch((e: unknown) => e);
      await node.waitFor((l) => typeof l.msg === 'string' && l.msg.includes('running kubeadm init'));
      await new Promise((r) => setTimeout(r, 500));
      await node.kill('SIGKILL');
      assert.ok((await pending) instanceof Error);

      // Same boot: PCR 15 is extended and the state says "initializing": the agent refuses to go on.
      await node.restart({ KUBEADM_STANDIN_HANG_PHASE: '' });
      assert.notEqual(await node.exited(), 0);
      assert.match(node.stderr.join(''), /interrupted.*reboot/);

      // Reboot (fresh PCRs): the agent cleans up and serves init again, which now succeeds.
      await node.tpm.restart();
      await node.restart({ KUBEADM_STANDIN_HANG_PHASE: '' });
      await node.waitFor((l) => l.msg === 'init server listening');
      const result = await initCluster({
        endpoint: endpoint(node),
        verifier: testVerifier(ca),
        request: initRequest(node.initSecret).request,
      });
      assert.ok(result.kubeconfig.length > 0);
    } finally {
      await node.stop();
    }
  });
});

/** After init, PCR 15 holds the cluster's extend: a verifier for a second init must accept it to get that far. */
function testVerifierWithPcr15(ca: SwtpmCa, pcr15: string) {
  return testVerifier(ca, swtpmMeasurements({ 15: { expected: pcr15, warnOnly: false } }));
}
