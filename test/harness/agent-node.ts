// Test harness: one Sextant agent process with its own swtpm, state directory, rootfs and metadata.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseTpmtPublic } from '../../attestation/tpm-structures.js';
import { initCluster } from '../../cli/init/init-cluster.js';
import { ekHashesIn, manufactureTpm } from '../../cli/provider/qemu/swtpm.js';
import type { KubeadmTuning } from '../../common/contracts/kubeadm-tuning.js';
import {
  deriveOwnerSeed,
  ekKeyHash,
  type InventoryNode,
  ownerPublicKeyText,
  signInventory,
} from '../../common/contracts/owner.js';
import type { InitSuccess } from '../../gen/proto/init.js';
import { openTpm } from '../../native/tpm/index.js';
import { OWNER_PID_ENV } from '../kubeadm/src/daemon.js';
import {
  initRequest,
  prepareStandinNode,
  stopStandinDaemons,
  type TestInit,
  testVerifier,
} from './cluster-kit.js';
import { type NodeNamespace, waitForTcp } from './netns.js';
import { freePort } from './ports.js';
import { createSwtpmCa, type SwtpmCa, startSwtpm, swtpmSocketArgs } from './swtpm.js';

/** The node's TPM as the harness drives it: a reboot is restart(), which resets the PCRs. */
export interface NodeTpm {
  tcti: string;
  stateDir: string;
  /** SHA-256 of the EK's public key: what the operator's inventory and the JoinService know the node by. */
  ek: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

const REPO = resolve(import.meta.dirname, '../..');

export interface AgentNode {
  name: string;
  dir: string;
  stateDir: string;
  rootfs: string;
  tpm: NodeTpm;
  /** The network namespace the node lives in, if any. */
  netns?: NodeNamespace;
  address: string;
  initSecret: Buffer;
  /** The node's role as its metadata says it. */
  role: 'control-plane' | 'worker';
  metadataFile: string;
  initPort: number;
  joinServicePort: number;
  apiServerPort: number;
  /** Every JSON log line the agent printed so far. */
  lines: Record<string, unknown>[];
  stderr: string[];
  process: ChildProcess;
  /** Resolves with the first log line matching `test`, or rejects after `timeoutMs`. */
  waitFor(
    test: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Waits for the agent process to exit and resolves with its code. */
  exited(): Promise<number | null>;
  /** Kills the agent (SIGKILL by default) without touching its TPM or state. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the agent again on the same TPM state, state dir and rootfs. */
  restart(extraEnv?: NodeJS.ProcessEnv): Promise<void>;
  stop(): Promise<void>;
}

export interface AgentNodeOptions {
  name?: string;
  role?: 'control-plane' | 'worker';
  ca?: SwtpmCa;
  env?: NodeJS.ProcessEnv;
  advertiseAddress?: string;
  joinEndpoints?: string[];
  /** Run the node (its swtpm, agent and kubeadm) inside this namespace, on its address with default ports. */
  netns?: NodeNamespace;
  mdns?: boolean;
  /** The init secret whose hash the node's metadata carries (default: a fresh random one). */
  initSecret?: Buffer;
  /**
   * The operator commitment in the metadata (base64 owner key); default: the key derived from the init secret, as
   * `sextant create` writes it. `null` leaves it out.
   */
  owner?: string | null;
  /**
   * The kubeadm tuning its metadata names (default 'qemu-tcg': these tests share a loaded host with other suites and
   * keep the long waits); `null` names none, kubeadm's defaults.
   */
  kubeadmTuning?: KubeadmTuning | null;
  /** Runs once the node's TPM and metadata exist, before its agent starts (e.g. to publish an inventory). */
  beforeStart?: (node: AgentNode) => Promise<void>;
  /** Wait until the init server listens (default) or return right after spawning. */
  waitReady?: boolean;
}

let sharedCa: Promise<SwtpmCa> | undefined;
/** One EK CA per test process: creating it costs seconds, and every node's EK certificate chains to it. */
export function testCa(): Promise<SwtpmCa> {
  sharedCa ??= createSwtpmCa();
  return sharedCa;
}

/**
 * `sextant init` of the control plane `cp` as the CLI sends it (the standard test request unless given, its
 * attestation checked against `ca`), resolved once its JoinService listens: a cluster workers can join.
 */
export async function initControlPlane(
  cp: AgentNode,
  ca: SwtpmCa,
  init: TestInit = initRequest(cp.initSecret),
  timeoutMs = 60_000,
): Promise<InitSuccess> {
  const result = await initCluster({
    endpoint: { host: '127.0.0.1', port: cp.initPort },
    verifier: testVerifier(ca),
    request: init.request,
  });
  await cp.waitFor((l) => l.msg === 'JoinService listening', timeoutMs);
  return result;
}

/** Starts an agent on 127.0.0.1 with free ports; the caller's test must call stop(). */
export async function startAgentNode(options: AgentNodeOptions = {}): Promise<AgentNode> {
  const name = options.name ?? `node-${randomBytes(3).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), `sextant-${name}-`));
  const ca = options.ca ?? (await testCa());
  const tpm = options.netns ? await swtpmInNamespace(options.netns, dir, ca) : await loopbackTpm(ca);
  const initSecret = options.initSecret ?? randomBytes(32);
  const caFile = join(dir, 'ek-ca.pem');
  await writeFile(caFile, ca.rootPem + ca.issuerPem);
  const metadataFile = join(dir, 'metadata.json');
  const owner = options.owner === undefined ? ownerPublicKeyText(deriveOwnerSeed(initSecret)) : options.owner;
  const tuning = options.kubeadmTuning === undefined ? 'qemu-tcg' : options.kubeadmTuning;
  await writeFile(
    metadataFile,
    JSON.stringify({
      name,
      role: options.role ?? 'control-plane',
      initSecretHash: createHash('sha256').update(initSecret).digest('hex'),
      advertiseAddress: options.advertiseAddress ?? options.netns?.address ?? '127.0.0.1',
      peers: [],
      joinEndpoints: options.joinEndpoints ?? [],
      ...(owner === null ? {} : { owner }),
      ...(tuning === null ? {} : { kubeadmTuning: tuning }),
    }),
  );
  // In a namespace of its own a node uses the real default ports; on the shared loopback, free ones.
  const [initPort, joinServicePort, apiServerPort] = options.netns
    ? [9000, 30090, 6443]
    : [await freePort(), await freePort(), await freePort()];
  const node: AgentNode = {
    name,
    dir,
    stateDir: join(dir, 'state'),
    rootfs: join(dir, 'rootfs'),
    tpm,
    ...(options.netns ? { netns: options.netns } : {}),
    address: options.netns?.address ?? '127.0.0.1',
    initSecret,
    role: options.role ?? 'control-plane',
    metadataFile,
    initPort,
    joinServicePort,
    apiServerPort,
    lines: [],
    stderr: [],
    process: undefined as unknown as ChildProcess,
    waitFor: () => Promise.reject(new Error('not started')),
    exited: () => Promise.resolve(null),
    kill: async () => {},
    restart: async () => {},
    stop: async () => {},
  };
  // The node image's part the kubeadm stand-in's preflight checks: forwarding on, a kubelet on PATH.
  prepareStandinNode(node.rootfs);
  await options.beforeStart?.(node);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SEXTANT_TCTI: tpm.tcti,
    SEXTANT_STATE_DIR: node.stateDir,
    SEXTANT_ROOTFS: node.rootfs,
    SEXTANT_METADATA_URL: `file://${metadataFile}`,
    SEXTANT_EVENT_LOG: join(dir, 'no-event-log'),
    SEXTANT_LISTEN_ADDRESS: options.netns ? '0.0.0.0' : '127.0.0.1',
    SEXTANT_INIT_PORT: String(initPort),
    SEXTANT_JOIN_SERVICE_PORT: String(joinServicePort),
    SEXTANT_API_SERVER_PORT: String(apiServerPort),
    SEXTANT_MDNS: options.mdns ? '1' : '0',
    SEXTANT_EK_CA: caFile,
    SEXTANT_KUBELET_START: 'true',
    // the stand-in's API-server daemon ends with this run, however it is killed
    [OWNER_PID_ENV]: String(process.pid),
    ...options.env,
  };
  // No config file: the default path does not exist on a test machine, and the environment says it all.
  delete env.SEXTANT_AGENT_CONFIG;

  const waiters: {
    test: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  const launch = (extra: NodeJS.ProcessEnv = {}) => {
    const args = ['--import', 'tsx', join(REPO, 'agent/main.ts')];
    const spawnOptions = { cwd: REPO, env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] as const };
    const child = options.netns
      ? options.netns.spawn(process.execPath, args, { ...spawnOptions, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, args, { ...spawnOptions, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const text = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let line: Record<string, unknown>;
        try {
          line = JSON.parse(text) as Record<string, unknown>;
        } catch {
          line = { msg: text, level: 'raw' };
        }
        node.lines.push(line);
        for (const w of [...waiters]) {
          if (w.test(line)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => node.stderr.push(chunk.toString()));
    const exit = new Promise<number | null>((res) => child.once('exit', (code: number | null) => res(code)));
    node.process = child;
    node.exited = () => exit;
  };
  node.waitFor = (test, timeoutMs = 30_000) => {
    const found = node.lines.find(test);
    if (found) return Promise.resolve(found);
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        rej(
          new Error(
            `${name}: no matching log line within ${timeoutMs} ms; stderr: ${node.stderr.join('').slice(-2000)}`,
          ),
        );
      }, timeoutMs);
      waiters.push({
        test,
        resolve: (l) => {
          clearTimeout(timer);
          res(l);
        },
      });
    });
  };
  node.kill = async (signal = 'SIGKILL') => {
    if (node.process.exitCode === null && node.process.signalCode === null) {
      node.process.kill(signal);
      await node.exited();
    }
  };
  node.restart = async (extraEnv = {}) => {
    await node.kill();
    node.lines.length = 0;
    launch(extraEnv);
  };
  node.stop = async () => {
    await node.kill('SIGTERM').catch(() => {});
    // The stand-in's API server outlives the agent, as a real control plane would: stop it with the node.
    await stopStandinDaemons(node.rootfs);
    await tpm.stop();
    await rm(dir, { recursive: true, force: true });
  };
  launch();
  if (options.waitReady !== false) {
    try {
      await Promise.race([
        node.waitFor((l) => l.msg === 'init server listening' || l.msg === 'control plane resumed'),
        node.exited().then((code) => {
          throw new Error(`${name}: agent exited with ${code}: ${node.stderr.join('').slice(-2000)}`);
        }),
      ]);
    } catch (err) {
      await node.stop();
      throw err;
    }
  }
  return node;
}

/**
 * A swtpm inside a node's namespace, on that namespace's own loopback (port 2321, which is free in any fresh
 * namespace). Its state is manufactured once, with the EK certificate from the shared test CA.
 */
async function swtpmInNamespace(ns: NodeNamespace, dir: string, ca: SwtpmCa): Promise<NodeTpm> {
  const stateDir = join(dir, 'tpm');
  await mkdir(stateDir, { recursive: true });
  // Manufactured as the QEMU provider does, the EK read from the certificate swtpm_setup wrote: a host-side swtpm
  // started only to read the EK once hung the whole file (its TPM call never answered) about once in five runs.
  const ekCerts = join(dir, 'ek-certs');
  await manufactureTpm(stateDir, ca.dir, undefined, ekCerts);
  const ek = ekHashesIn(ekCerts)[0] as string;
  let child: ChildProcess | undefined;
  const start = async () => {
    child = ns.spawn('swtpm', swtpmSocketArgs(stateDir), { stdio: 'ignore' });
    await waitForTcp(ns, 2321);
  };
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child?.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  };
  await start();
  return {
    tcti: 'swtpm:host=127.0.0.1,port=2321',
    stateDir,
    ek,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
  };
}

/** The EK hash of the TPM behind `tcti`, read before the agent holds the TPM. */
async function ekOf(tcti: string): Promise<string> {
  process.env.TSS2_LOG ??= 'all+none';
  const tpm = await openTpm(tcti);
  try {
    const ek = await tpm.readEndorsementKey();
    return ekKeyHash(parseTpmtPublic(ek.public).key.export({ type: 'spki', format: 'der' }));
  } finally {
    await tpm.close();
  }
}

/** A swtpm on the shared loopback, with its EK hash. */
async function loopbackTpm(ca: SwtpmCa): Promise<NodeTpm> {
  const swtpm = await startSwtpm({ ca });
  try {
    return { ...swtpm, ek: await ekOf(swtpm.tcti) };
  } catch (err) {
    await swtpm.stop();
    throw err;
  }
}

/** The serial of the last inventory published: each one is above the one before, as `create` signs them. */
let published = 0;

/**
 * What `sextant create` hands the cluster: the inventory of `nodes` (name, role, EK) signed with the owner key of
 * `initSecret`, written into every given node's metadata (the JoinService reads it anew for each join).
 */
export async function publishInventory(
  nodes: Pick<AgentNode, 'name' | 'role' | 'tpm' | 'metadataFile'>[],
  initSecret: Buffer,
  extra: InventoryNode[] = [],
): Promise<void> {
  const inventory = signInventory(
    [...nodes.map((n) => ({ name: n.name, role: n.role, eks: [n.tpm.ek] })), ...extra],
    deriveOwnerSeed(initSecret),
    ++published,
  );
  for (const n of nodes) {
    const metadata = JSON.parse(await readFile(n.metadataFile, 'utf8')) as Record<string, unknown>;
    await writeFile(n.metadataFile, JSON.stringify({ ...metadata, inventory }));
  }
}
