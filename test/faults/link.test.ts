// @tier system: root, swtpm (agents in network namespaces)
// Over a real network: the control plane in its own network namespace, the CLI in the hub, the
// node's link pulled (carrier down) while `sextant init` is in flight. A short flap loses nothing; a link down past
// --timeout gives its own message and next step, and the next init fetches the result the node kept.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AgentNode, startAgentNode } from '../harness/agent-node.js';
import { kubeadmStandin } from '../harness/cluster-kit.js';
import { createTestNetwork, type TestNetwork } from '../harness/netns.js';
import { createSwtpmCa, removeSwtpmCa, type SwtpmCa } from '../harness/swtpm.js';
import { runCli, writeLocalWorkspace } from '../harness/workspace.js';

const REPO = resolve(import.meta.dirname, '../..');

/** `sextant init` in the hub, its stderr watched so the test can pull the link at the right moment. */
function cliInHub(net: TestNetwork, dir: string, args: string[]) {
  const child = net.hubNode.spawn(
    process.execPath,
    ['--import', 'tsx', join(REPO, 'cli/main.ts'), 'init', ...args, '--workspace', dir],
    { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const waitFor = async (re: RegExp, timeoutMs = 60_000) => {
    const until = Date.now() + timeoutMs;
    while (!re.test(stderr)) {
      if (Date.now() > until) throw new Error(`no ${re} within ${timeoutMs} ms:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return { exited, waitFor, stderr: () => stderr };
}

describe('link faults during init', { timeout: 300_000 }, () => {
  let ca: SwtpmCa;
  let net: TestNetwork;
  const nodes: AgentNode[] = [];
  const dirs: string[] = [];
  before(async () => {
    ca = await createSwtpmCa();
    net = await createTestNetwork({ prefix: 'sxf', nodes: 2 });
    kubeadmStandin();
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    await net.destroy();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
    removeSwtpmCa(ca);
  });

  async function setup(index: number) {
    const dir = await mkdtemp(join(tmpdir(), 'sextant-link-ws-'));
    dirs.push(dir);
    const ws = await writeLocalWorkspace(dir, { ca });
    const cp = await startAgentNode({
      ca,
      netns: net.nodes[index]!,
      initSecret: ws.initSecret,
      env: { KUBEADM_STANDIN_DELAY_PHASE: 'wait-control-plane:6000' },
    });
    nodes.push(cp);
    return { dir, cp };
  }

  it('the link down for 3 s while init is in flight: the answer arrives once it is back, nothing lost', async () => {
    const { dir, cp } = await setup(0);
    const cli = cliInHub(net, dir, ['--endpoint', `${cp.address}:9000`]);
    await cli.waitFor(/node: running kubeadm init/);
    await net.nodes[0]!.setLinkUp(false);
    await new Promise((r) => setTimeout(r, 3000));
    await net.nodes[0]!.setLinkUp(true);
    assert.equal(await cli.exited, 0, cli.stderr());
    assert.ok(existsSync(join(dir, 'sextant-admin.conf')));
  });

  it('the link down past --timeout: "no answer within N s ... run init again"; with the link back the next init fetches the result', async () => {
    const { dir, cp } = await setup(1);
    const cli = cliInHub(net, dir, ['--endpoint', `${cp.address}:9000`, '--timeout', '8']);
    await cli.waitFor(/node: running kubeadm init/);
    await net.nodes[1]!.setLinkUp(false);
    assert.equal(await cli.exited, 1);
    assert.match(
      cli.stderr(),
      /no answer from the node within 8 s \(--timeout\): it may still be initializing; the node may be initialized; run init again to fetch the result/,
    );
    assert.doesNotMatch(cli.stderr(), /refused/);
    assert.ok(existsSync(join(dir, 'sextant-init-pending.json')));
    await net.nodes[1]!.setLinkUp(true);
    await cp.waitFor((l) => l.msg === 'cluster initialized', 60_000);
    const again = await runCli(net.hubNode, dir, ['init']);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.match(again.stderr, /answering with the result kept for its owner/);
    assert.ok(existsSync(join(dir, 'sextant-admin.conf')));
  });
});
