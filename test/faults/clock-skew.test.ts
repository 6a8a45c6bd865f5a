// @tier system: swtpm (agents on loopback)
// kubeadm in this test is the stand-in (test/kubeadm): real PKI, config decoding and preflight, its own API server; no kubelet, no control-plane Pods.
// A skewed clock must not break attested TLS. Trust in an ephemeral aTLS certificate comes from the
// pin plus the attestation bound to its key, so the certificate carries no date a skewed peer could fall outside.
// Each end runs in its own process with libfaketime skewing only its wall clock; the sockets are real.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEphemeralIdentity } from '../../attestation/atls/index.js';
import { type AgentNode, initControlPlane, startAgentNode } from '../harness/agent-node.js';
import { kubeadmStandin } from '../harness/cluster-kit.js';
import { createSwtpmCa, removeSwtpmCa, type SwtpmCa } from '../harness/swtpm.js';
import { skewedClockEnv } from './tools/faketime.js';
import { inventoryPublisher } from './tools/inventory.js';

const REPO = resolve(import.meta.dirname, '../..');
const PEER = join(REPO, 'test/faults/tools/atls-peer.ts');

function peer(args: string[], offset: string | undefined): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', PEER, ...args], {
    cwd: REPO,
    env: { ...process.env, ...(offset ? skewedClockEnv(offset) : {}) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

async function firstLine(child: ChildProcess): Promise<string> {
  let buf = '';
  for await (const chunk of child.stdout!) {
    buf += String(chunk);
    const nl = buf.indexOf('\n');
    if (nl >= 0) return buf.slice(0, nl);
  }
  return buf;
}

describe('clock skew: the attested channel works at ±2 h', { timeout: 180_000 }, () => {
  it('the ephemeral certificate carries no date a skewed clock can fall outside', async () => {
    const cert = new X509Certificate((await createEphemeralIdentity()).certDer);
    assert.equal(new Date(cert.validFrom).getTime(), Date.UTC(1970, 0, 1));
    assert.equal(new Date(cert.validTo).getTime(), Date.UTC(9999, 11, 31, 23, 59, 59));
  });

  const table: { name: string; server?: string; client?: string }[] = [
    { name: 'server 2 h ahead of the client', server: '+2h' },
    { name: 'client 2 h behind the server', client: '-2h' },
    { name: 'server 2 h behind the client', server: '-2h' },
    { name: 'client 2 h ahead of the server', client: '+2h' },
    { name: 'server +2 h, client −2 h (4 h apart)', server: '+2h', client: '-2h' },
  ];
  for (const row of table) {
    it(`attested channel opens with ${row.name}`, async () => {
      const server = peer(['serve'], row.server);
      try {
        const ready = await firstLine(server);
        assert.match(ready, /^port \d+$/);
        const client = peer(['connect', ready.slice(5)], row.client);
        const [result, [code]] = await Promise.all([firstLine(client), once(client, 'exit')]);
        assert.equal(result, 'ok', `client said: ${result}`);
        assert.equal(code, 0);
      } finally {
        server.kill('SIGKILL');
      }
    });
  }

  describe('agents with skewed clocks', () => {
    let ca: SwtpmCa;
    let cp: AgentNode | undefined;
    let worker: AgentNode | undefined;
    before(async () => {
      ca = await createSwtpmCa();
      kubeadmStandin();
    });
    after(() => removeSwtpmCa(ca));

    async function skewedCluster(offset: string) {
      const initSecret = randomBytes(32);
      const publish = inventoryPublisher(initSecret);
      cp = await startAgentNode({ ca, initSecret, env: skewedClockEnv(offset), beforeStart: publish });
      const result = await initControlPlane(cp, ca);
      assert.ok(result.kubeconfig.length > 0);
      worker = await startAgentNode({
        ca,
        role: 'worker',
        initSecret,
        joinEndpoints: [`127.0.0.1:${cp.joinServicePort}`],
        beforeStart: publish,
      });
      return { cp, worker };
    }
    async function stopCluster() {
      await worker?.stop();
      await cp?.stop();
      worker = undefined;
      cp = undefined;
    }

    it('a control plane 2 h ahead: the CLI inits it, and a worker 2 h behind it gets its join ticket over attested TLS', async () => {
      try {
        const { cp, worker } = await skewedCluster('+2h');
        // The agent really runs 2 h ahead: its log lines carry its own wall clock.
        const stamped = cp.lines.find((l) => typeof l.time === 'string');
        const ahead = Date.parse(String(stamped?.time)) - Date.now();
        assert.ok(ahead > 100 * 60_000, `agent clock ${Math.round(ahead / 60_000)} min ahead, expected ~120`);
        await cp.waitFor((l) => /^admitted /.test(String(l.msg)), 120_000);
        await worker.waitFor((l) => /node lock taken for join/.test(String(l.msg)), 30_000);
        // Past the attested channel, Kubernetes' own certificates (kubeadm backdates them 5 min) need clocks
        // within minutes: that part is Kubernetes', not the channel's (docs/reliability.md).
      } finally {
        await stopCluster();
      }
    });

    it("a control plane 4 min ahead (within kubeadm's own 5 min backdate): the worker joins all the way", async () => {
      try {
        const { worker } = await skewedCluster('+4m');
        const line = await worker.waitFor(
          (l) => /^joined the cluster/.test(String(l.msg)) || /^join failed/.test(String(l.msg)),
          120_000,
        );
        assert.match(String(line.msg), /^joined the cluster as /, JSON.stringify(line));
      } finally {
        await stopCluster();
      }
    });
  });
});
