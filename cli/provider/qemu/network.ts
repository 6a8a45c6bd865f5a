// The VMs' network: a bridge inside a network namespace this code creates, one tap per VM on it, and a veth
// pair whose host end carries the gateway address, so the operator's CLI on the host reaches every VM directly
// (no `ip netns exec` for gRPC) and the VMs reach the host; nothing is routed beyond the subnet.
// mDNS multicast passes on the bridge.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { run } from './exec.js';

export interface VmNetwork {
  namespace: string;
  /** Host end of the veth pair (in the host's namespace). */
  hostInterface: string;
  /** e.g. 10.213.37.0/24 */
  subnet: string;
  prefix: number;
  /** The host's address on the subnet, also the VMs' gateway. */
  hostAddress: string;
  /** Address for the VM with index i (0-based). */
  addressOf(i: number): string;
  tapOf(i: number): string;
  macOf(i: number): string;
}

/**
 * Names derived from the workspace path, so terminate finds them with no state file; the subnet too, unless
 * `attempt` asks for another one (terminate needs only the names).
 */
export function networkFor(workspaceDir: string, attempt = 0, subnet?: string): VmNetwork {
  const h = createHash('sha256').update(workspaceDir).digest();
  const id = h.subarray(0, 4).toString('hex');
  const s = attempt === 0 ? h : createHash('sha256').update(`${workspaceDir}\0${attempt}`).digest();
  const third = 16 + ((s[4] ?? 0) % 224); // 10.213.16.0 .. 10.213.239.0
  const base = subnet === undefined ? `10.213.${third}` : subnetBase(subnet);
  return {
    namespace: `sextant-${id}`,
    hostInterface: `sx${id}`,
    subnet: `${base}.0/24`,
    prefix: 24,
    hostAddress: `${base}.1`,
    addressOf: (i) => `${base}.${10 + i}`,
    tapOf: (i) => `tap${i}`,
    macOf: (i) => `52:54:00:${id.slice(0, 2)}:${id.slice(2, 4)}:${(10 + i).toString(16).padStart(2, '0')}`,
  };
}

/** The first three octets of a configured x.y.z.0/24 (the addresses the provider hands out assume a /24). */
function subnetBase(subnet: string): string {
  const m = /^(\d{1,3}\.\d{1,3}\.\d{1,3})\.0\/24$/.exec(subnet);
  if (!m?.[1]) {
    throw new Error(
      `provider.qemu.subnet: the QEMU provider supports "auto" or an x.y.z.0/24 subnet, got ${JSON.stringify(subnet)}`,
    );
  }
  return m[1];
}

export function networkExists(net: VmNetwork): boolean {
  return existsSync(`/run/netns/${net.namespace}`);
}

/**
 * The workspace's network on a subnet nothing on this host routes yet: another workspace (or one a killed run left
 * behind) may hold the one its path hashes to.
 */
export async function freeNetworkFor(workspaceDir: string, subnet?: string): Promise<VmNetwork> {
  // a configured subnet is the operator's (or config generate --release's) choice: createNetwork checks it is free
  if (subnet !== undefined && subnet !== 'auto') return networkFor(workspaceDir, 0, subnet);
  const routes = (await run('list host routes', 'ip', ['-4', 'route', 'show'])).split('\n');
  for (let attempt = 0; attempt < 32; attempt++) {
    const net = networkFor(workspaceDir, attempt);
    if (!routes.some((r) => r.startsWith(net.subnet))) return net;
  }
  throw new Error('no free 10.213.x.0/24 subnet for this workspace (32 tried); terminate stale workspaces');
}

/** Creates namespace, bridge, veth to the host and `taps` tap devices; fails if the subnet is already routed. */
export async function createNetwork(net: VmNetwork, taps: number): Promise<void> {
  const routes = await run('list host routes', 'ip', ['-4', 'route', 'show']);
  if (routes.split('\n').some((r) => r.startsWith(net.subnet))) {
    throw new Error(
      `network ${net.subnet} is already routed on this host (another workspace with a colliding subnet?)`,
    );
  }
  const ns = net.namespace;
  const ip = (what: string, ...args: string[]) => run(`network ${ns}: ${what}`, 'ip', args);
  await ip('create namespace', 'netns', 'add', ns);
  try {
    await ip('loopback up', '-n', ns, 'link', 'set', 'lo', 'up');
    await ip('create bridge', '-n', ns, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('bridge up', '-n', ns, 'link', 'set', 'br0', 'up');
    await ip(
      'create veth',
      'link',
      'add',
      net.hostInterface,
      'type',
      'veth',
      'peer',
      'name',
      'uplink',
      'netns',
      ns,
    );
    await ip('attach veth', '-n', ns, 'link', 'set', 'uplink', 'master', 'br0');
    await ip('veth up (namespace)', '-n', ns, 'link', 'set', 'uplink', 'up');
    await ip('host address', 'addr', 'add', `${net.hostAddress}/${net.prefix}`, 'dev', net.hostInterface);
    await ip('veth up (host)', 'link', 'set', net.hostInterface, 'up');
    for (let i = 0; i < taps; i++) {
      const tap = net.tapOf(i);
      await ip(`create ${tap}`, '-n', ns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
      await ip(`attach ${tap}`, '-n', ns, 'link', 'set', tap, 'master', 'br0');
      await ip(`${tap} up`, '-n', ns, 'link', 'set', tap, 'up');
    }
  } catch (err) {
    await deleteNetwork(net);
    throw err;
  }
}

/** Removes namespace (with bridge and taps) and the veth; harmless when already gone. */
export async function deleteNetwork(net: VmNetwork): Promise<void> {
  await run('delete veth', 'ip', ['link', 'del', net.hostInterface]).catch(() => undefined);
  if (networkExists(net))
    await run(`delete namespace ${net.namespace}`, 'ip', ['netns', 'del', net.namespace]);
}
