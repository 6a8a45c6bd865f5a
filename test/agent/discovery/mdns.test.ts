// @tier system: root (network namespaces)
// mDNS advertise + browse between processes in separate network namespaces on one bridge.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { advertiseJoinService, mdnsSource } from '../../../agent/discovery/index.js';
import { createTestNetwork, type NodeNamespace, type TestNetwork } from '../../harness/netns.js';

const ADVERTISE = new URL('./fixtures/advertise.ts', import.meta.url).pathname;
const BROWSE = new URL('./fixtures/browse.ts', import.meta.url).pathname;
const skip = process.getuid?.() === 0 ? false : 'needs root for network namespaces';

/** Starts an advertiser in `node` and waits for its first announcement. */
async function advertise(node: NodeNamespace, name: string, port: number): Promise<ChildProcess> {
  const child = node.spawn(process.execPath, ['--import', 'tsx', ADVERTISE, name, String(port)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (d.includes('UP')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`advertiser in ${node.name} exited (${code}): ${stderr}`)));
  });
  return child;
}

async function stopAdvertiser(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.stdin?.end(); // the fixture sends goodbye packets and exits
  await exited;
}

async function browse(node: NodeNamespace, args: string[]): Promise<unknown> {
  const r = await node.exec(process.execPath, ['--import', 'tsx', BROWSE, ...args], { timeoutMs: 30_000 });
  assert.equal(r.exitCode, 0, `browse in ${node.name}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe('mDNS join service discovery across namespaces', { skip }, () => {
  let net: TestNetwork;
  before(async () => {
    net = await createTestNetwork({ prefix: 'sxmd', nodes: 3 });
  });
  after(async () => {
    await net?.destroy();
  });

  it('a browser on another node finds every advertised JoinService by IPv4 address and port', async () => {
    const [a, b, c] = net.nodes as [NodeNamespace, NodeNamespace, NodeNamespace];
    const adA = await advertise(a, 'cp-a', 30090);
    const adB = await advertise(b, 'cp-b', 30091);
    try {
      const found = (await browse(c, ['mdns', '1500'])) as { host: string; port: number }[];
      assert.deepEqual(
        found.map((e) => `${e.host}:${e.port}`).sort(),
        [`${a.address}:30090`, `${b.address}:30091`].sort(),
      );
      // the hub (where a CLI would run) sees them too, through an interface given by name
      const fromHub = (await browse(net.hubNode, ['mdns', '1500', 'br0'])) as {
        host: string;
        source: string;
      }[];
      assert.deepEqual(fromHub.map((e) => e.host).sort(), [a.address, b.address].sort());
      assert.ok(fromHub.every((e) => e.source === 'mdns'));
    } finally {
      await stopAdvertiser(adA);
      await stopAdvertiser(adB);
    }
  });

  it('discoverAll merges mDNS with the static list while a failing source is only logged', async () => {
    const [a, , c] = net.nodes as [NodeNamespace, NodeNamespace, NodeNamespace];
    const ad = await advertise(a, 'cp-a2', 30090);
    try {
      const { endpoints, log } = (await browse(c, [
        'all',
        '1500',
        `${a.address}:30090`,
        '10.213.99.1:30090',
      ])) as {
        endpoints: { host: string; port: number; source: string }[];
        log: string[];
      };
      assert.deepEqual(
        endpoints.map((e) => [e.host, e.port, e.source]),
        [
          [a.address, 30090, 'mdns'],
          ['10.213.99.1', 30090, 'static'],
        ],
      );
      const failed = log.map((l) => JSON.parse(l)).find((l) => l.level === 'warning');
      assert.equal(failed.source, 'metadata');
      assert.equal(failed.component, 'join-client');
      assert.match(failed.reason, /no instance metadata/);
    } finally {
      await stopAdvertiser(ad);
    }
  });

  it('finds nothing (and does not fail) when no JoinService is advertised', async () => {
    assert.deepEqual(await browse(net.nodes[1]!, ['mdns', '500']), []);
  });
});

describe('mdnsSource (no network)', () => {
  it('validates its timeout and honours an aborted signal before touching the network', async () => {
    assert.throws(() => mdnsSource({ timeoutMs: 0 }), /timeoutMs/);
    assert.equal(mdnsSource().name, 'mdns');
    await assert.rejects(mdnsSource().discover(AbortSignal.abort(new Error('gave up'))), /gave up/);
    await assert.rejects(mdnsSource({ interface: 'no-such-if0' }).discover(), /no-such-if0/);
  });

  it('refuses a bad service name, port or interface before advertising', () => {
    assert.throws(() => advertiseJoinService({ name: '', port: 30090 }), /service name/);
    assert.throws(() => advertiseJoinService({ name: 'x'.repeat(64), port: 30090 }), /service name/);
    assert.throws(() => advertiseJoinService({ name: 'cp', port: 0 }), /port/);
    assert.throws(() => advertiseJoinService({ name: 'cp', port: 1.5 }), /port/);
    assert.throws(
      () => advertiseJoinService({ name: 'cp', port: 1, interface: 'no-such-if0' }),
      /no-such-if0/,
    );
  });
});
