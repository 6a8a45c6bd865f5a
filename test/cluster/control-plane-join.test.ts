// @tier system: root, swtpm (agents in network namespaces)
// Two control planes joining one cluster at the same time, agents in network namespaces on their own swtpm, kubeadm
// = the stand-in (test/kubeadm: its API server stores the bootstrap-token Secrets the JoinService creates through the
// API). With upload-certs each ticket re-encrypted the one kubeadm-certs Secret under a new key, so the first joiner
// failed to decrypt it; now the certificates travel in each attested ticket, download-certs is skipped, no Secret is
// shared. Also: each join token is deleted once its node confirmed, and the cluster secrets are nowhere under
// /etc/kubernetes.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CONTROL_PLANE_CERTIFICATES } from '../../agent/kubeadm/control-plane-certs.js';
import { type AgentNode, publishInventory, startAgentNode } from '../harness/agent-node.js';
import { createTestNetwork, type TestNetwork } from '../harness/netns.js';
import { createSwtpmCa, removeSwtpmCa, type SwtpmCa } from '../harness/swtpm.js';
import { runCli, writeLocalWorkspace } from '../harness/workspace.js';

const msg = (l: Record<string, unknown>): string => String(l.msg ?? '');

async function joined(node: AgentNode, timeoutMs = 180_000): Promise<string> {
  const line = await node.waitFor(
    (l) => /^joined the cluster as /.test(msg(l)) || /^join failed/.test(msg(l)),
    timeoutMs,
  );
  return msg(line);
}

/** Every file under `dir` (recursively) whose bytes contain `needle`. */
function filesContaining(dir: string, needle: Buffer): string[] {
  const found: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    if (readFileSync(path).includes(needle)) found.push(path);
  }
  return found;
}

/** The bootstrap-token Secrets in the stand-in API server's store on `node`, by description. */
function joinTokens(node: AgentNode): string[] {
  const store = JSON.parse(readFileSync(join(node.rootfs, 'var/lib/kubeadm-standin/store.json'), 'utf8')) as {
    secrets: Record<string, { type?: string; data?: Record<string, string> }>;
  };
  return Object.values(store.secrets)
    .filter((s) => s.type === 'bootstrap.kubernetes.io/token')
    .map((s) => Buffer.from(s.data?.description ?? '', 'base64').toString())
    .filter((d) => d.startsWith('sextant join ticket'));
}

describe('control-plane joins in network namespaces (kubeadm stand-in)', { timeout: 600_000 }, () => {
  let ca: SwtpmCa;
  let net: TestNetwork;
  let dir: string;
  const nodes: AgentNode[] = [];
  before(async () => {
    ca = await createSwtpmCa();
    net = await createTestNetwork({ prefix: 'sxc', nodes: 3 });
    dir = await mkdtemp(join(tmpdir(), 'sextant-cpjoin-ws-'));
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await net?.destroy();
    await rm(dir, { recursive: true, force: true });
    await removeSwtpmCa(ca);
  });

  it('two control planes join at once; each gets the shared certificates in its ticket, no kubeadm-certs, tokens deleted after use', async () => {
    const ws = await writeLocalWorkspace(dir, { ca });
    let publishing: Promise<void> = Promise.resolve();
    const listed: AgentNode[] = [];
    const start = async (index: number, name: string) => {
      const node = await startAgentNode({
        name,
        role: 'control-plane',
        ca,
        netns: net.nodes[index]!,
        mdns: true,
        initSecret: ws.initSecret,
        beforeStart: (n) => {
          listed.push(n);
          publishing = publishing.then(() => publishInventory(listed, ws.initSecret));
          return publishing;
        },
      });
      nodes.push(node);
      return node;
    };
    const cp0 = await start(0, 'cp-0');
    const init = await runCli(net.hubNode, dir, ['init', '--endpoint', `${cp0.address}:9000`]);
    assert.equal(init.exitCode, 0, init.stderr);
    await cp0.waitFor((l) => msg(l) === 'JoinService listening', 60_000);

    // Both start together and find the JoinService by mDNS: their tickets are issued side by side.
    const [cp1, cp2] = await Promise.all([start(1, 'cp-1'), start(2, 'cp-2')]);
    const results = await Promise.all([joined(cp1), joined(cp2)]);
    assert.deepEqual(results, ['joined the cluster as control-plane', 'joined the cluster as control-plane']);
    for (const name of ['cp-1', 'cp-2']) {
      assert.ok(
        cp0.lines.some((l) => msg(l) === `admitted ${name} as control plane`),
        name,
      );
    }
    // kubeadm ran no upload-certs on cp-0 and no download-certs on the joiners
    assert.ok(
      !cp0.lines.some((l) => l.command === 'upload-certs'),
      'no upload-certs on the first control plane',
    );
    const cpPki = join(cp0.rootfs, 'etc/kubernetes/pki');
    for (const node of [cp1, cp2]) {
      const pki = join(node.rootfs, 'etc/kubernetes/pki');
      for (const f of CONTROL_PLANE_CERTIFICATES) {
        assert.deepEqual(
          await readFile(join(pki, f)),
          await readFile(join(cpPki, f)),
          `${node.name}: pki/${f}`,
        );
      }
      // kubeadm's output is in the agent's log: the control-plane preparation ran, its download-certs did not
      assert.ok(
        node.lines.some((l) => /^\[certs\] Using certificateDir folder/.test(msg(l))),
        `${node.name}: no control-plane certs phase in the log`,
      );
      assert.ok(
        !node.lines.some((l) => /download-certs|Skipping certs download/.test(msg(l))),
        `${node.name}: download-certs ran`,
      );
      await node.waitFor((l) => msg(l) === 'JoinService listening', 60_000);
      // the master secret lives in the agent's state dir only
      const secrets = await readFile(join(node.stateDir, 'cluster-secrets.json'));
      const master = (JSON.parse(secrets.toString()) as { masterSecret: { key: string } }).masterSecret.key;
      assert.deepEqual(filesContaining(join(node.rootfs, 'etc'), Buffer.from(master)), [], node.name);
    }
    // Both confirmed their joins, so cp-0's JoinService deleted both tokens (the stand-in API server's store).
    await cp1.waitFor((l) => msg(l) === 'join confirmed to the JoinService', 30_000);
    await cp2.waitFor((l) => msg(l) === 'join confirmed to the JoinService', 30_000);
    assert.deepEqual(joinTokens(cp0), []);
    assert.ok(
      cp0.lines.some((l) => msg(l) === 'join of cp-1 confirmed') &&
        cp0.lines.some((l) => msg(l) === 'join of cp-2 confirmed'),
    );
  });
});
