// @tier system: root (network namespaces)
// The QEMU provider's network: names from the workspace path, and a subnet nothing on the host routes yet.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { networkFor } from '../../../../cli/provider/qemu/network.js';

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, '../../../..');
const FIXTURE = join(import.meta.dirname, 'fixtures/free-network.ts');
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : false;

describe('networkFor', () => {
  it('derives stable names and addresses from the workspace path; another attempt moves only the subnet', () => {
    const a = networkFor('/w/one');
    const again = networkFor('/w/one');
    assert.deepEqual(
      [again.namespace, again.hostInterface, again.subnet, again.macOf(1)],
      [a.namespace, a.hostInterface, a.subnet, a.macOf(1)],
    );
    assert.match(a.subnet, /^10\.213\.\d+\.0\/24$/);
    assert.equal(a.hostAddress, a.subnet.replace('.0/24', '.1'));
    assert.equal(a.addressOf(0), a.subnet.replace('.0/24', '.10'));
    const moved = networkFor('/w/one', 1);
    assert.equal(moved.namespace, a.namespace, 'terminate finds it by name whatever the subnet');
    assert.equal(moved.hostInterface, a.hostInterface);
    assert.notEqual(networkFor('/w/two').namespace, a.namespace);
  });
});

describe('freeNetworkFor', { skip }, () => {
  const ns = `sxfree-${process.pid}`;
  const ws = '/tmp/sextant-free-network-test';
  before(async () => {
    const taken = networkFor(ws).hostAddress;
    await run('ip', ['netns', 'add', ns]);
    await run('ip', ['-n', ns, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
    await run('ip', ['-n', ns, 'addr', 'add', `${taken}/24`, 'dev', 'v0']);
    await run('ip', ['-n', ns, 'link', 'set', 'v0', 'up']);
    await run('ip', ['-n', ns, 'link', 'set', 'v1', 'up']);
  });
  after(() => run('ip', ['netns', 'del', ns]));

  it('moves to another subnet when the derived one is already routed (a stale or colliding workspace)', async () => {
    const { stdout } = await run(
      'ip',
      ['netns', 'exec', ns, process.execPath, '--import', 'tsx', FIXTURE, ws],
      {
        cwd: REPO,
      },
    );
    const { derived, free } = JSON.parse(stdout) as { derived: string; free: string };
    assert.equal(derived, networkFor(ws).subnet);
    assert.notEqual(free, derived);
    assert.match(free, /^10\.213\.\d+\.0\/24$/);
  });
});
