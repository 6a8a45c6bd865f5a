// @tier system: root, swtpm (agents in network namespaces)
// kubeadm in this test is the stand-in (test/kubeadm): real PKI, config decoding and preflight, its own API server; no kubelet, no control-plane Pods.
// Join end to end: agents in network namespaces, each with its own swtpm, the CLI run from the hub namespace,
// workers finding the JoinService by mDNS. Every fault of the join issue: a mismatching PCR, the JoinService
// killed mid-join, a link down, kubeadm join failing, a node that lost the race to an Init.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NodeStateStore } from '../../agent/state/node-state.js';
import { loadState } from '../../cli/workspace/state.js';
import { clusterPcrValue } from '../../common/cluster-pcr.js';
import { type AgentNode, publishInventory, startAgentNode } from '../harness/agent-node.js';
import { createTestNetwork, type TestNetwork } from '../harness/netns.js';
import { createSwtpmCa, removeSwtpmCa, type SwtpmCa } from '../harness/swtpm.js';
import { type LocalWorkspace, runCli, writeLocalWorkspace } from '../harness/workspace.js';

const JOINED = /^joined the cluster as (worker|control-plane)$/;
const msg = (l: Record<string, unknown>): string => String(l.msg ?? '');

/** One network, one CA, one workspace and the nodes started on it; stop() releases all of it. */
interface Cluster {
  net: TestNetwork;
  ws: LocalWorkspace;
  nodes: AgentNode[];
  start(
    index: number,
    name: string,
    role: 'control-plane' | 'worker',
    env?: NodeJS.ProcessEnv,
  ): Promise<AgentNode>;
  init(cp: AgentNode, ...extra: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

async function cluster(ca: SwtpmCa, size: number): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'sextant-join-ws-'));
  const ws = await writeLocalWorkspace(dir, { ca });
  const net = await createTestNetwork({ prefix: 'sxj', nodes: size });
  const nodes: AgentNode[] = [];
  // What `sextant create` does: every node the operator made is in the signed inventory, by its EK. Published
  // before each agent starts, one write after another, so the control plane's copy always lists every node.
  const listed: AgentNode[] = [];
  let publishing: Promise<void> = Promise.resolve();
  const publish = (n: AgentNode) => {
    listed.push(n);
    publishing = publishing.then(() => publishInventory(listed, ws.initSecret));
    return publishing;
  };
  return {
    net,
    ws,
    nodes,
    async start(index, name, role, env = {}) {
      const node = await startAgentNode({
        name,
        role,
        ca,
        netns: net.nodes[index]!,
        mdns: true,
        initSecret: ws.initSecret,
        env,
        beforeStart: publish,
      });
      nodes.push(node);
      return node;
    },
    init: (cp, ...extra) => runCli(net.hubNode, dir, ['init', '--endpoint', `${cp.address}:9000`, ...extra]),
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
      await net.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** PCR 15 as the node attests it to `sextant verify` (the agent holds its TPM; tools cannot share it). */
async function attestedPcr15(c: Cluster, node: AgentNode): Promise<string> {
  const out = await runCli(c.net.hubNode, c.ws.dir, ['verify', '--endpoint', `${node.address}:9000`]);
  assert.equal(out.exitCode, 0, out.stderr);
  const line = out.stdout.split('\n').find((l) => l.startsWith('PCR 15:'));
  assert.ok(line, out.stdout);
  return line.slice('PCR 15:'.length).trim();
}

async function joined(node: AgentNode, timeoutMs = 120_000): Promise<string> {
  const line = await node.waitFor((l) => JOINED.test(msg(l)) || /^join failed/.test(msg(l)), timeoutMs);
  assert.match(msg(line), JOINED, `${node.name}: ${msg(line)}`);
  return msg(line);
}

describe('join in network namespaces', { timeout: 600_000 }, () => {
  let ca: SwtpmCa;
  before(async () => {
    ca = await createSwtpmCa();
  });
  after(() => removeSwtpmCa(ca));

  it('1 control plane + 2 workers: CLI init, mDNS joins, a second control plane, a worker rebooted rejoins without a second kubeadm join', async () => {
    const c = await cluster(ca, 4);
    try {
      const [cp, w0, w1] = await Promise.all([
        c.start(0, 'cp-0', 'control-plane'),
        c.start(1, 'worker-0', 'worker'),
        c.start(2, 'worker-1', 'worker'),
      ]);
      const init = await c.init(cp);
      assert.equal(init.exitCode, 0, init.stderr);
      const state = await loadState(c.ws.dir);
      assert.ok(state);
      const pcr15 = clusterPcrValue(state.clusterId).toString('hex');

      // Init won the node lock on the control plane: its own join client stood down.
      await cp.waitFor((l) => /join client stops/.test(msg(l)), 10_000);
      for (const w of [w0, w1]) {
        assert.equal(await joined(w), 'joined the cluster as worker');
        assert.ok(existsSync(join(w.rootfs, 'etc/kubernetes/kubelet.conf')), `${w.name}: kubelet.conf`);
        const nodeState = await new NodeStateStore(w.stateDir).load();
        assert.equal(nodeState?.phase, 'bootstrapped');
        assert.equal(nodeState?.role, 'worker');
        assert.equal(await attestedPcr15(c, w), pcr15, `${w.name}: PCR 15 is the cluster ID's extend`);
      }
      assert.equal(await attestedPcr15(c, cp), pcr15);
      // The JoinService logged each admission with the node's name.
      for (const name of ['worker-0', 'worker-1']) {
        assert.ok(
          cp.lines.some((l) => msg(l) === `admitted ${name} as worker`),
          name,
        );
      }

      // A second control plane joins and gets the control-plane certificates; it then runs a JoinService too.
      const cp1 = await c.start(3, 'cp-1', 'control-plane');
      assert.equal(await joined(cp1), 'joined the cluster as control-plane');
      for (const f of ['ca.crt', 'ca.key', 'sa.key', 'front-proxy-ca.key', 'etcd/ca.key']) {
        assert.ok(existsSync(join(cp1.rootfs, 'etc/kubernetes/pki', f)), `cp-1 has pki/${f}`);
      }
      await cp1.waitFor((l) => msg(l) === 'JoinService listening', 30_000);

      // Reboot worker-0: the agent stops, the TPM restarts (PCRs reset), the agent boots again.
      await w0.kill();
      await w0.tpm.restart();
      await w0.restart();
      await w0.waitFor((l) => msg(l) === 'rejoined the cluster; kubelet started', 120_000);
      assert.ok(!w0.lines.some((l) => l.command === 'join'), 'no second kubeadm join after the reboot');
      assert.equal(await attestedPcr15(c, w0), pcr15, 'PCR 15 extended again after the reboot');
    } finally {
      await c.stop();
    }
  });

  it('a node whose PCR 4 differs is refused, and both logs name PCR 4', async () => {
    const c = await cluster(ca, 2);
    try {
      const [cp, bad] = await Promise.all([
        c.start(0, 'cp-0', 'control-plane'),
        c.start(1, 'odd-0', 'worker'),
      ]);
      // Its boot measured something else into PCR 4: extend it while the agent is down, then boot the agent.
      await bad.kill();
      const extend = await bad.netns!.exec('tpm2_pcrextend', [`4:sha256=${'ab'.repeat(32)}`], {
        env: { ...process.env, TPM2TOOLS_TCTI: bad.tpm.tcti },
      });
      assert.equal(extend.exitCode, 0, extend.stderr);
      await bad.restart();
      const init = await c.init(cp);
      assert.equal(init.exitCode, 0, init.stderr);
      const refused = await cp.waitFor((l) => /refused/.test(msg(l)) && /PCR 4\b/.test(msg(l)), 60_000);
      assert.match(msg(refused), /odd-0|\d+\.\d+\.\d+\.\d+/);
      await bad.waitFor((l) => /^join via .* failed: .*PCR 4\b/.test(msg(l)), 60_000);
      assert.equal(await new NodeStateStore(bad.stateDir).load(), null, 'the refused node holds no state');
    } finally {
      await c.stop();
    }
  });

  it('faults: JoinService killed mid-join, a link down, kubeadm join failing, Init after a join', async () => {
    const c = await cluster(ca, 4);
    try {
      const cp = await c.start(0, 'cp-0', 'control-plane');
      const init = await c.init(cp);
      assert.equal(init.exitCode, 0, init.stderr);
      await cp.waitFor((l) => msg(l) === 'JoinService listening', 30_000);

      // The control plane's agent dies as it hands worker-0 its ticket (bootstrap token made through the API,
      // admission recorded, the answer not yet read by the worker), then comes back: the worker asks again and
      // the same EK's pending admission is replaced.
      const issuing = cp.waitFor((l) => msg(l) === 'admitted worker-0 as worker', 120_000);
      const starting = c.start(1, 'worker-0', 'worker');
      await issuing;
      await cp.kill();
      await cp.restart();
      await cp.waitFor((l) => msg(l) === 'control plane resumed', 60_000);
      const w0 = await starting;
      assert.equal(await joined(w0), 'joined the cluster as worker');

      // worker-1 boots with its cable pulled: discovery fails (and is retried) until the link comes back.
      await c.net.nodes[2]!.setLinkUp(false);
      const w1 = await c.start(2, 'worker-1', 'worker');
      await w1.waitFor(
        (l) => /^(discovery failed|join via .* failed)/.test(msg(l)) || /no JoinService/.test(msg(l)),
        60_000,
      );
      await c.net.nodes[2]!.setLinkUp(true);
      assert.equal(await joined(w1), 'joined the cluster as worker');

      // kubeadm join fails on worker-2: the node is marked for reset and says where it failed.
      const w2 = await c.start(3, 'worker-2', 'worker', { KUBEADM_STANDIN_FAIL_PHASE: 'kubelet-start' });
      const failed = await w2.waitFor((l) => /^join failed at /.test(msg(l)), 120_000);
      assert.match(msg(failed), /kubeadm/);
      assert.match(msg(failed), /node marked for reset/);
      assert.equal((await new NodeStateStore(w2.stateDir).load())?.phase, 'reset-required');

      // worker-0 took the node lock by joining: an Init sent to it now is refused and changes nothing.
      const before = await readFile(join(c.ws.dir, 'sextant-state.yaml'), 'utf8');
      const second = await c.init(w0, '--force');
      assert.equal(second.exitCode, 1, second.stdout);
      assert.match(second.stderr, /refused init/);
      assert.equal(
        await readFile(join(c.ws.dir, 'sextant-state.yaml'), 'utf8'),
        before,
        'workspace untouched',
      );
      assert.equal((await new NodeStateStore(w0.stateDir).load())?.phase, 'bootstrapped');
    } finally {
      await c.stop();
    }
  });
});
