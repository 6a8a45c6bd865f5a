// DEVELOPER TOOL, NOT A KUBERNETES: the API server is the kubeadm stand-in's; `sextant mini up` is the real cluster.
// One control plane and N workers, each an agent
// process in its own network namespace with its own software TPM; the operator's CLI inits the control plane over
// attested TLS from the hub namespace; the workers find the JoinService by mDNS, attest, and join. kubeadm is the
// test stand-in (test/kubeadm): real kubeadm cannot be obtained here, and the stand-in never ships in an image.
//
//   node --import tsx scripts/dev-netns-cluster.ts [--workspace DIR] [--workers N] [--keep] [--force]
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isInitialized } from '../cli/workspace/workspace.js';
import { type AgentNode, publishInventory, startAgentNode } from '../test/harness/agent-node.js';
import { createTestNetwork, type TestNetwork } from '../test/harness/netns.js';
import { createSwtpmCa } from '../test/harness/swtpm.js';
import { runCli, writeLocalWorkspace } from '../test/harness/workspace.js';

const { values } = parseArgs({
  options: {
    workspace: { type: 'string', default: 'dev-netns-cluster' },
    workers: { type: 'string', default: '2' },
    keep: { type: 'boolean', default: false },
    force: { type: 'boolean', default: false },
  },
});
const workers = Number(values.workers);
if (!Number.isInteger(workers) || workers < 0 || workers > 20) {
  console.error(`--workers: expected an integer 0-20, got ${JSON.stringify(values.workers)}`);
  process.exit(2);
}
const ws = resolve(values.workspace);
const started = Date.now();
const say = (m: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${m}`);

if (await isInitialized(ws)) {
  if (!values.force) {
    console.error(
      `${ws} already holds an initialized cluster; pass --force to replace it, or --workspace DIR`,
    );
    process.exit(1);
  }
  await rm(ws, { recursive: true, force: true });
}
await mkdir(ws, { recursive: true, mode: 0o700 });

// The workspace: what an operator would have after "sextant config generate" and "sextant create".
const ca = await createSwtpmCa(join(ws, 'ek-ca'));
const { initSecret } = await writeLocalWorkspace(ws, { ca, workers });
say(
  `workspace ${ws}: sextant-conf.yaml, sextant-initsecret.json, EK CA, measurements (PCRs 0-14 of a swtpm)`,
);

let net: TestNetwork | undefined;
const nodes: AgentNode[] = [];
const teardown = async () => {
  await Promise.all(nodes.map((n) => n.stop().catch(() => {})));
  await net?.destroy();
};
process.once('SIGINT', () => {
  say('interrupted: stopping the nodes');
  void teardown().then(() => process.exit(130));
});

let status = 0;
try {
  net = await createTestNetwork({ prefix: 'sxlc', nodes: 1 + workers });
  say(`network: hub ${net.hub} (bridge ${net.bridgeAddress}), ${net.nodes.length} node namespaces`);
  const names = ['local-cp-0', ...Array.from({ length: workers }, (_, i) => `local-worker-${i}`)];
  nodes.push(
    ...(await Promise.all(
      names.map((name, i) =>
        startAgentNode({
          name,
          role: i === 0 ? 'control-plane' : 'worker',
          ca,
          netns: net!.nodes[i]!,
          mdns: true,
          initSecret,
        }),
      ),
    )),
  );
  for (const n of nodes) say(`${n.name}: agent up at ${n.address} (swtpm ${n.tpm.tcti})`);
  // What `sextant create` does on VMs: the operator's signed inventory (name, role, EK) in every node's metadata.
  await publishInventory(nodes, initSecret);
  const [cp, ...rest] = nodes as [AgentNode, ...AgentNode[]];

  say(`sextant init --endpoint ${cp.address}:${cp.initPort} (from the hub namespace)`);
  const init = await runCli(net.hubNode, ws, ['init', '--endpoint', `${cp.address}:${cp.initPort}`]);
  process.stdout.write(init.stdout);
  process.stderr.write(init.stderr);
  const code = init.exitCode;
  if (code !== 0) throw new Error(`sextant init exited with ${code}`);

  for (const w of rest) {
    const line = await w.waitFor(
      (l) => typeof l.msg === 'string' && /^(joined the cluster|join failed|join client stopped)/.test(l.msg),
      180_000,
    );
    if (!String(line.msg).startsWith('joined the cluster')) throw new Error(`${w.name}: ${String(line.msg)}`);
    say(`${w.name}: ${String(line.msg)} (cluster ID ${String(line.clusterId).slice(0, 16)}…)`);
  }
  // What the API server says, asked with the admin kubeconfig init wrote: the nodes that registered.
  const kubeconfig = join(ws, 'sextant-admin.conf');
  const listed = await net.hubNode.exec('kubectl', [
    '--kubeconfig',
    kubeconfig,
    'get',
    '--raw',
    '/api/v1/nodes',
  ]);
  if (listed.exitCode !== 0) throw new Error(`kubectl get --raw /api/v1/nodes: ${listed.stderr.trim()}`);
  const items = (JSON.parse(listed.stdout) as { items: { metadata: { name: string } }[] }).items;
  say(
    `API server (kubectl --kubeconfig sextant-admin.conf): nodes ${items.map((i) => i.metadata.name).join(', ')}`,
  );
  say(`done: 1 control plane + ${rest.length} workers; workspace files:`);
  for (const f of [
    'sextant-conf.yaml',
    'sextant-initsecret.json',
    'sextant-mastersecret.json',
    'sextant-state.yaml',
    'sextant-admin.conf',
  ]) {
    console.log(`  ${join(ws, f)}${existsSync(join(ws, f)) ? '' : '  (missing!)'}`);
  }
  if (values.keep) {
    say(`the cluster keeps running; the API server is ${cp.address}:${cp.apiServerPort} inside ${net.hub}:`);
    console.log(
      `  ip netns exec ${net.hub} kubectl --kubeconfig ${join(ws, 'sextant-admin.conf')} get --raw /api/v1/nodes`,
    );
    say('Ctrl-C stops it');
    await new Promise(() => {});
  }
} catch (err) {
  console.error(`local cluster failed: ${(err as Error).message}`);
  for (const n of nodes) {
    console.error(`--- last log lines of ${n.name}`);
    for (const l of n.lines.slice(-15)) console.error(`  ${JSON.stringify(l)}`);
  }
  status = 1;
} finally {
  if (!values.keep || status !== 0) {
    await teardown();
    say('nodes stopped, namespaces removed (the workspace files stay)');
  }
}
process.exit(status);
