// Test harness: a private multi-node network. One "hub" namespace holds a bridge (and the .1 address, so a CLI
// run in the hub reaches every node); each node is a namespace joined to the bridge by a veth pair. Nothing is
// connected to the host's network, so multicast (mDNS) and addresses stay inside the test.
import { type ChildProcess, execFile, type SpawnOptions, spawn, spawnSync } from 'node:child_process';

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface ExecOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  input?: string;
}

export interface NodeNamespace {
  name: string;
  address: string;
  veth: string;
  /** Runs a command inside the namespace; never rejects on a non-zero exit (see exitCode). */
  exec(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a long-running process inside the namespace; destroy() kills it (and its children). */
  spawn(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** Carrier on the node's veth, e.g. to simulate a cable pull; up restores its routes. */
  setLinkUp(up: boolean): Promise<void>;
}

export interface TestNetwork {
  hub: string;
  bridgeAddress: string;
  nodes: NodeNamespace[];
  /** The hub namespace as a node (bridge address, runs e.g. the CLI). */
  hubNode: NodeNamespace;
  addNode(): Promise<NodeNamespace>;
  destroy(): Promise<void>;
}

const MULTICAST = '224.0.0.0/4';
const NODE_VETH = 'eth0';
const BRIDGE = 'br0';
const KILL_GRACE_MS = 2000;

let counter = 0;
// Everything alive when the process ends; the exit hook tears it down synchronously.
const liveNamespaces = new Set<string>();
const liveGroups = new Set<number>();
let hooked = false;

function cleanupNow(): void {
  for (const pgid of liveGroups) killGroup(pgid, 'SIGKILL');
  liveGroups.clear();
  for (const ns of liveNamespaces) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  liveNamespaces.clear();
}

function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', cleanupNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      cleanupNow();
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

function run(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? 0,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
          reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}`));
          return;
        }
        const code = err ? ((err as { code?: number }).code ?? (child.signalCode ? 128 : 1)) : 0;
        resolve({ stdout, stderr, exitCode: typeof code === 'number' ? code : 1 });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

async function ip(args: string[]): Promise<void> {
  const r = await run('ip', args);
  if (r.exitCode !== 0)
    throw new Error(`ip ${args.join(' ')} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
}

function checkSubnet(subnet: string): void {
  const parts = subnet.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[0-9]{1,3}$/.test(p) || Number(p) > 255)) {
    throw new Error(`subnet must be the first three octets of a /24, e.g. "10.213.7", got "${subnet}"`);
  }
}

class Namespace implements NodeNamespace {
  private readonly groups = new Set<number>();

  constructor(
    readonly name: string,
    readonly address: string,
    readonly veth: string,
  ) {}

  exec(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    // Own process group, so a wrapper (npx, sh) is killed together with what it started.
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { ...opts, detached: true });
    const pid = child.pid;
    if (pid !== undefined) {
      this.groups.add(pid);
      liveGroups.add(pid);
    }
    return child;
  }

  async setLinkUp(up: boolean): Promise<void> {
    await ip(['-n', this.name, 'link', 'set', this.veth, up ? 'up' : 'down']);
    // The kernel drops a device's routes when it goes down; the multicast route must come back with it.
    if (up) await ip(['-n', this.name, 'route', 'replace', MULTICAST, 'dev', this.veth]);
  }

  async killAll(): Promise<void> {
    const groups = [...this.groups];
    this.groups.clear();
    for (const g of groups) killGroup(g, 'SIGTERM');
    const deadline = Date.now() + KILL_GRACE_MS;
    while (groups.some((g) => killGroup(g, 0)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const g of groups) {
      killGroup(g, 'SIGKILL');
      liveGroups.delete(g);
    }
  }
}

/**
 * Creates a hub namespace with a bridge at <subnet>.1 and `nodes` node namespaces at <subnet>.11, .12, ….
 * Names carry the pid and a counter, so parallel tests never collide; each network is isolated, so subnets may
 * repeat between networks.
 */
export async function createTestNetwork(options: {
  prefix?: string;
  nodes: number;
  subnet?: string;
}): Promise<TestNetwork> {
  installExitHook();
  const id = ++counter;
  const prefix = options.prefix ?? 'sx';
  const subnet = options.subnet ?? `10.213.${id % 256}`;
  checkSubnet(subnet);
  if (!(Number.isInteger(options.nodes) && options.nodes >= 0 && options.nodes <= 200)) {
    throw new Error(`nodes must be an integer in 0-200, got ${options.nodes}`);
  }
  const base = `${prefix}-${process.pid}-${id}`;
  const hubName = `${base}-hub`;
  const bridgeAddress = `${subnet}.1`;
  const hubNode = new Namespace(hubName, bridgeAddress, BRIDGE);
  const nodes: Namespace[] = [];
  let destroyed = false;

  const addNs = async (name: string) => {
    liveNamespaces.add(name);
    await ip(['netns', 'add', name]);
    await ip(['-n', name, 'link', 'set', 'lo', 'up']);
  };

  const addNode = async (): Promise<NodeNamespace> => {
    if (destroyed) throw new Error(`test network ${base} is destroyed`);
    const index = nodes.length + 1;
    const name = `${base}-n${index}`;
    const address = `${subnet}.${10 + index}`;
    if (10 + index > 254) throw new Error(`test network ${base} is full (${index - 1} nodes)`);
    await addNs(name);
    const port = `port${index}`;
    await ip([
      'link',
      'add',
      NODE_VETH,
      'netns',
      name,
      'type',
      'veth',
      'peer',
      'name',
      port,
      'netns',
      hubName,
    ]);
    await ip(['-n', hubName, 'link', 'set', port, 'master', BRIDGE]);
    await ip(['-n', hubName, 'link', 'set', port, 'up']);
    await ip(['-n', name, 'addr', 'add', `${address}/24`, 'dev', NODE_VETH]);
    await ip(['-n', name, 'link', 'set', NODE_VETH, 'up']);
    // No default route here, and multicast sends fail without a route: pin 224/4 to the veth.
    await ip(['-n', name, 'route', 'add', MULTICAST, 'dev', NODE_VETH]);
    const node = new Namespace(name, address, NODE_VETH);
    nodes.push(node);
    return node;
  };

  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    await Promise.all([hubNode, ...nodes].map((n) => n.killAll()));
    for (const ns of [...nodes.map((n) => n.name), hubName]) {
      // Deleting a namespace also deletes the veth ends inside it (and so their peers).
      await run('ip', ['netns', 'del', ns]);
      liveNamespaces.delete(ns);
    }
  };

  try {
    await addNs(hubName);
    await ip(['-n', hubName, 'link', 'add', BRIDGE, 'type', 'bridge']);
    await ip(['-n', hubName, 'addr', 'add', `${bridgeAddress}/24`, 'dev', BRIDGE]);
    await ip(['-n', hubName, 'link', 'set', BRIDGE, 'up']);
    await ip(['-n', hubName, 'route', 'add', MULTICAST, 'dev', BRIDGE]);
    for (let i = 0; i < options.nodes; i++) await addNode();
  } catch (err) {
    await destroy();
    throw err;
  }

  return { hub: hubName, bridgeAddress, nodes, hubNode, addNode, destroy };
}

/**
 * Waits until something inside `node` accepts TCP connections on host:port (default 127.0.0.1, i.e. the node's
 * own loopback, where e.g. its swtpm listens).
 */
export async function waitForTcp(
  node: NodeNamespace,
  port: number,
  options: { host?: string; timeoutMs?: number } = {},
): Promise<void> {
  const host = options.host ?? '127.0.0.1';
  const timeoutMs = options.timeoutMs ?? 10_000;
  // One node process polls inside the namespace, instead of one `ip netns exec` per try.
  const script = `
    const net = require('node:net');
    const deadline = Date.now() + ${timeoutMs};
    const attempt = () => {
      const s = net.connect(${port}, ${JSON.stringify(host)}, () => { s.destroy(); process.exit(0); });
      s.on('error', () => {
        if (Date.now() > deadline) process.exit(1);
        setTimeout(attempt, 20);
      });
    };
    attempt();`;
  const r = await node.exec(process.execPath, ['-e', script], { timeoutMs: timeoutMs + 5000 });
  if (r.exitCode !== 0) {
    throw new Error(`nothing listens on ${host}:${port} in ${node.name} after ${timeoutMs} ms ${r.stderr}`);
  }
}
