// @tier system: root (network namespaces)
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestNetwork, type NodeNamespace, type TestNetwork, waitForTcp } from './netns.js';
import { swtpmSocketArgs } from './swtpm.js';

const skip = process.getuid?.() === 0 ? false : 'needs root for network namespaces';

function netnsList(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((l) => l !== '');
}

// A killed process whose parent is gone stays a zombie until init reaps it; that counts as dead.
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

// A TCP echo server and a client with a short connect timeout: "ping" without needing iputils.
const ECHO_SERVER = `require('node:net').createServer((s) => s.pipe(s)).listen(7000, () => console.log('LISTEN'));`;
const tcpPing = (node: NodeNamespace, host: string) =>
  node.exec(process.execPath, [
    '-e',
    `const s = require('node:net').connect({ host: ${JSON.stringify(host)}, port: 7000, timeout: 1000 });
     s.on('connect', () => s.write('ping'));
     s.on('data', (d) => { process.stdout.write(d); s.destroy(); });
     s.on('timeout', () => { console.error('timeout'); process.exit(2); });
     s.on('error', (e) => { console.error(e.message); process.exit(3); });`,
  ]);

// Raw mDNS-group multicast (224.0.0.251:5353), independent of any mDNS library.
const MCAST_RECEIVER = `
  const s = require('node:dgram').createSocket({ type: 'udp4', reuseAddr: true });
  s.on('message', (m, r) => { console.log(m.toString() + ' from ' + r.address); process.exit(0); });
  s.bind(5353, () => { s.addMembership('224.0.0.251'); console.log('JOINED'); });
  setTimeout(() => process.exit(4), 5000);`;
const MCAST_SENDER = `
  const s = require('node:dgram').createSocket({ type: 'udp4', reuseAddr: true });
  s.bind(0, () => {
    const send = () => s.send('hello-mdns', 5353, '224.0.0.251', (e) => { if (e) { console.error(e.message); process.exit(5); } });
    send(); setInterval(send, 100); setTimeout(() => process.exit(0), 3000);
  });`;

async function multicastReaches(from: NodeNamespace, to: NodeNamespace): Promise<string> {
  const receiver = to.spawn(process.execPath, ['-e', MCAST_RECEIVER], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  receiver.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const exited = new Promise<number | null>((r) => receiver.once('exit', (code) => r(code)));
  while (!out.includes('JOINED')) await new Promise((r) => setTimeout(r, 20));
  const sender = await from.exec(process.execPath, ['-e', MCAST_SENDER.replace('3000', '1500')]);
  assert.equal(sender.exitCode, 0, `multicast send from ${from.name}: ${sender.stderr}`);
  const code = await exited;
  assert.equal(code, 0, `no multicast reached ${to.name}`);
  return out;
}

describe('test network of namespaces on a bridge', { skip }, () => {
  let net: TestNetwork;
  before(async () => {
    net = await createTestNetwork({ nodes: 3, subnet: '10.213.7' });
  });
  after(async () => {
    await net?.destroy();
  });

  it('creates uniquely named namespaces with lo up, an address and a multicast route on the veth', async () => {
    assert.equal(net.nodes.length, 3);
    assert.equal(net.bridgeAddress, '10.213.7.1');
    assert.deepEqual(
      net.nodes.map((n) => n.address),
      ['10.213.7.11', '10.213.7.12', '10.213.7.13'],
    );
    const names = [net.hub, ...net.nodes.map((n) => n.name)];
    assert.equal(new Set(names).size, 4);
    for (const name of names) assert.ok(name.includes(String(process.pid)), name);
    const listed = netnsList();
    for (const name of names) assert.ok(listed.includes(name), `${name} missing from ip netns list`);
    for (const node of net.nodes) {
      const addr = await node.exec('ip', ['-o', '-4', 'addr', 'show']);
      assert.match(addr.stdout, /lo\s+inet 127\.0\.0\.1/);
      assert.match(addr.stdout, new RegExp(`${node.veth}\\s+inet ${node.address.replaceAll('.', '\\.')}/24`));
      const routes = await node.exec('ip', ['route', 'show']);
      assert.match(routes.stdout, new RegExp(`224\\.0\\.0\\.0/4 dev ${node.veth}`));
      assert.doesNotMatch(routes.stdout, /default/, 'no way out of the test network');
    }
  });

  it('every node reaches every other node and the hub reaches all of them', async () => {
    const [a, b, c] = net.nodes as [NodeNamespace, NodeNamespace, NodeNamespace];
    const server = a.spawn(process.execPath, ['-e', ECHO_SERVER], { stdio: 'ignore' });
    assert.ok(server.pid);
    await waitForTcp(a, 7000, { host: a.address });
    for (const from of [b, c, net.hubNode]) {
      const r = await tcpPing(from, a.address);
      assert.equal(r.stdout, 'ping', `${from.name} → ${a.address}: ${r.stderr}`);
    }
    const hubServer = net.hubNode.spawn(process.execPath, ['-e', ECHO_SERVER], { stdio: 'ignore' });
    assert.ok(hubServer.pid);
    await waitForTcp(net.hubNode, 7000);
    assert.equal((await tcpPing(c, net.bridgeAddress)).stdout, 'ping');
  });

  it('carries mDNS-group multicast between nodes and to the hub', async () => {
    const [a, b] = net.nodes as [NodeNamespace, NodeNamespace];
    assert.match(
      await multicastReaches(a, b),
      new RegExp(`hello-mdns from ${a.address.replaceAll('.', '\\.')}`),
    );
    assert.match(await multicastReaches(b, net.hubNode), /hello-mdns/);
  });

  it('link down cuts a node off; link up restores unicast, routes and multicast', async () => {
    const [a, b] = net.nodes as [NodeNamespace, NodeNamespace];
    const server = b.spawn(process.execPath, ['-e', ECHO_SERVER], { stdio: 'ignore' });
    assert.ok(server.pid);
    await waitForTcp(b, 7000, { host: b.address });
    await b.setLinkUp(false);
    const cut = await tcpPing(a, b.address);
    assert.notEqual(cut.exitCode, 0, 'reached a node whose link is down');
    await b.setLinkUp(true);
    await waitForTcp(a, 7000, { host: b.address, timeoutMs: 10_000 });
    assert.equal((await tcpPing(a, b.address)).stdout, 'ping');
    assert.match((await b.exec('ip', ['route', 'show'])).stdout, /224\.0\.0\.0\/4 dev eth0/);
    assert.match(await multicastReaches(a, b), /hello-mdns/);
  });

  it('adds a node later, reachable from the hub', async () => {
    const d = await net.addNode();
    assert.equal(d.address, '10.213.7.14');
    assert.equal(net.nodes.length, 4);
    const server = d.spawn(process.execPath, ['-e', ECHO_SERVER], { stdio: 'ignore' });
    assert.ok(server.pid);
    await waitForTcp(d, 7000, { host: d.address });
    assert.equal((await tcpPing(net.hubNode, d.address)).stdout, 'ping');
  });

  it('gives every node its own loopback: one swtpm per node on the same 127.0.0.1 port', async () => {
    const [a, b, c] = net.nodes as [NodeNamespace, NodeNamespace, NodeNamespace];
    const dirs = [a, b].map(() => mkdtempSync(join(tmpdir(), 'sextant-netns-swtpm-')));
    try {
      [a, b].forEach((node, i) => {
        node.spawn('swtpm', swtpmSocketArgs(dirs[i] as string), { stdio: 'ignore' });
      });
      await waitForTcp(a, 2321);
      await waitForTcp(b, 2321);
      await assert.rejects(waitForTcp(c, 2321, { timeoutMs: 300 }), /nothing listens on 127\.0\.0\.1:2321/);
    } finally {
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('test network lifecycle', { skip }, () => {
  it('parallel networks get distinct names; destroy kills their processes and leaves no namespace', async () => {
    const [one, two] = await Promise.all([createTestNetwork({ nodes: 2 }), createTestNetwork({ nodes: 1 })]);
    const names = [one, two].flatMap((n) => [n.hub, ...n.nodes.map((x) => x.name)]);
    assert.equal(new Set(names).size, 5);
    // a wrapper and its child: the whole process group must go
    const sleeper = one.nodes[0]!.spawn('sh', ['-c', 'sleep 300 & wait'], { stdio: 'ignore' });
    assert.ok(sleeper.pid && alive(sleeper.pid));
    await Promise.all([one.destroy(), two.destroy()]);
    await one.destroy(); // idempotent
    assert.ok(!alive(sleeper.pid!), 'spawned process survived destroy');
    const listed = netnsList();
    for (const name of names) assert.ok(!listed.includes(name), `${name} still exists`);
    await assert.rejects(one.addNode(), /destroyed/);
  });

  it('refuses bad options before creating anything, and cleans up when creation fails midway', async () => {
    await assert.rejects(createTestNetwork({ nodes: 1, subnet: '10.213' }), /subnet/);
    await assert.rejects(createTestNetwork({ nodes: 1, subnet: '10.213.300' }), /subnet/);
    await assert.rejects(createTestNetwork({ nodes: -1 }), /nodes/);
    // Only this process's namespaces: other test files create and remove theirs meanwhile.
    const ours = () => netnsList().filter((n) => n.includes(`-${process.pid}-`));
    const before = ours();
    await assert.rejects(createTestNetwork({ nodes: 2, prefix: 'bad/name' }), /ip netns add/);
    assert.deepEqual(ours(), before);
  });

  it('a test process that crashes leaves no namespace or process behind (exit hook)', async () => {
    const script = new URL('./fixtures/crash-network.ts', import.meta.url).pathname;
    const out = await new Promise<string>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8' }, (err, stdout, stderr) => {
        assert.ok(err, 'the fixture must crash');
        assert.match(stderr, /crashed on purpose/);
        resolve(stdout);
      });
    });
    const { names, pid } = JSON.parse(out) as { names: string[]; pid: number };
    assert.equal(names.length, 3);
    const listed = netnsList();
    for (const name of names) assert.ok(!listed.includes(name), `${name} survived the crash`);
    assert.ok(!alive(pid), 'sleeper survived the crash');
  });
});
