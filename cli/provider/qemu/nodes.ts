// The QEMU provider: boots a cluster's nodes as VMs (OVMF measured boot, one swtpm each) on a private
// network, hands each its per-node data through fw_cfg (the QEMU stand-in for a cloud metadata service),
// and tears everything down again. All artifacts live under <workspace>/qemu/.
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FW_CFG } from '../../../common/contracts/instance-metadata.js';
import { NODE_ROLES, type NodeRole } from '../../../common/contracts/node-role.js';
import { ownerPublicKeyText, signInventory } from '../../../common/contracts/owner.js';
import { DEFAULT_PORTS } from '../../../common/contracts/ports.js';
import { isDnsLabel } from '../../../common/net.js';
import { RELEASE_SERVER_PORT } from '../../release/release.js';
import { startComponentServer } from './component-server.js';
import { isOurProcess, readPid, run, stopProcess } from './exec.js';
import { nodeMetadata } from './metadata.js';
import { createNetwork, deleteNetwork, freeNetworkFor, networkFor } from './network.js';
import { ekHashesIn, manufactureTpm, readLocalCa, startSwtpm } from './swtpm.js';
import { OVMF_VARS, startVm, waitForConsole } from './vm.js';

export interface QemuNodeSpec {
  name: string;
  role: NodeRole;
}

export interface QemuClusterSpec {
  /** An image build output directory (scripts/image-build.sh prints it), holding disk.img. */
  imageDir: string;
  nodes: QemuNodeSpec[];
  /** SHA-256 hex of the init secret, served to every node in its metadata. */
  initSecretHash: string;
  /**
   * The operator's owner-key seed (derived from the init secret): its public key goes into every node's metadata
   * as the operator commitment, and it signs the inventory of the nodes made here (name, role, EKs).
   */
  ownerSeed?: Buffer;
  /** The inventory's serial (default 1): `create` takes the workspace's next one. */
  inventorySerial?: number;
  joinServicePort?: number;
  /**
   * vCPUs per VM (default 2: kubeadm's preflight refuses a control plane with fewer). It is part of the machine's
   * shape, which the firmware measures (PCR 0), so it must match the shape the image's measurements were taken
   * with (scripts/image-measurements.sh boots the provider's defaults).
   */
  cpus?: number;
  /** Default 3072 MiB: a control plane runs etcd, the API server, controller manager, scheduler and kubelet. */
  memoryMiB?: number;
  /** "auto" (from the workspace path) or an x.y.z.0/24 the config names. */
  subnet?: string;
  /**
   * A release's components directory: served over HTTP on the host's address on the subnet, port RELEASE_SERVER_PORT,
   * from create until terminate (the component URLs config generate --release wrote point there).
   */
  releaseComponents?: string;
  /** Wait for every agent's ready marker (default true). */
  waitForAgent?: boolean;
  readyTimeoutMs?: number;
  onProgress?: (message: string) => void;
}

export interface QemuNode {
  name: string;
  role: NodeRole;
  address: string;
  mac: string;
  dir: string;
  consoleLog: string;
  /** Seconds from QEMU start to the agent's ready marker, when waited for. */
  readySeconds?: number;
}

export interface QemuCluster {
  workspaceDir: string;
  namespace: string;
  hostInterface: string;
  subnet: string;
  hostAddress: string;
  nodes: QemuNode[];
  /** The private swtpm-localca CA the nodes' EK certificates chain to. */
  ekCa: { rootPem: string; issuerPem: string };
}

/** The component server's pid file, in the provider directory. */
const SERVER_PID = 'release-server.pid';

export const READY_MARKER = /SEXTANT-AGENT-READY/;
/** The machine shape nodes (and the reference boot for the image's measurements) get unless told otherwise. */
export const DEFAULT_VM_CPUS = 2;
export const DEFAULT_VM_MEMORY_MIB = 3072;

export function providerDir(workspaceDir: string): string {
  return join(resolve(workspaceDir), 'qemu');
}

/** Short paths for unix sockets (sun_path is 108 bytes; workspace paths can be longer). */
function runtimeDir(workspaceDir: string): string {
  return join('/run/sextant', networkFor(resolve(workspaceDir)).namespace);
}

function validate(spec: QemuClusterSpec): void {
  if (spec.nodes.length === 0) throw new Error('qemu provider: spec.nodes is empty');
  if (spec.nodes.length > 200) throw new Error('qemu provider: at most 200 nodes per subnet');
  const seen = new Set<string>();
  for (const n of spec.nodes) {
    if (!isDnsLabel(n.name)) throw new Error(`qemu provider: node name "${n.name}" is not a DNS label`);
    if (seen.has(n.name)) throw new Error(`qemu provider: node name "${n.name}" is used twice`);
    seen.add(n.name);
    if (!NODE_ROLES.includes(n.role)) {
      throw new Error(
        `qemu provider: node ${n.name}: role must be ${NODE_ROLES.join(' or ')}, got "${n.role}"`,
      );
    }
  }
  if (!spec.nodes.some((n) => n.role === 'control-plane'))
    throw new Error('qemu provider: no control-plane node');
  if (!/^[0-9a-f]{64}$/.test(spec.initSecretHash))
    throw new Error('qemu provider: initSecretHash must be 64 hex digits');
  if (!existsSync(join(spec.imageDir, 'disk.img'))) {
    throw new Error(
      `qemu provider: ${join(spec.imageDir, 'disk.img')} missing (build it with scripts/image-build.sh)`,
    );
  }
}

export async function createNodes(workspaceDir: string, spec: QemuClusterSpec): Promise<QemuCluster> {
  validate(spec);
  const ws = resolve(workspaceDir);
  const dir = providerDir(ws);
  const net = await freeNetworkFor(ws, spec.subnet);
  const progress = spec.onProgress ?? (() => undefined);
  if (existsSync(join(dir, 'cluster.json')) || existsSync(`/run/netns/${net.namespace}`)) {
    throw new Error(`qemu provider: ${dir} already holds a cluster; terminate it first`);
  }
  const port = spec.joinServicePort ?? DEFAULT_PORTS.joinService;
  const cpus = spec.cpus ?? DEFAULT_VM_CPUS;
  const memoryMiB = spec.memoryMiB ?? DEFAULT_VM_MEMORY_MIB;
  const disk = resolve(spec.imageDir, 'disk.img');
  const rt = runtimeDir(ws);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  mkdirSync(rt, { recursive: true, mode: 0o700 });

  progress(
    `network: namespace ${net.namespace}, ${net.subnet}, host ${net.hostAddress} on ${net.hostInterface}`,
  );
  await createNetwork(net, spec.nodes.length);
  if (spec.releaseComponents !== undefined) {
    const pid = await startComponentServer({
      root: spec.releaseComponents,
      host: net.hostAddress,
      port: RELEASE_SERVER_PORT,
      pidFile: join(dir, SERVER_PID),
      logFile: join(dir, 'release-server.log'),
    });
    progress(
      `release components served at http://${net.hostAddress}:${RELEASE_SERVER_PORT}/ (pid ${pid}, from ${spec.releaseComponents})`,
    );
  }

  const nodes: QemuNode[] = spec.nodes.map((n, i) => {
    const nodeDir = join(dir, n.name);
    return {
      name: n.name,
      role: n.role,
      address: net.addressOf(i),
      mac: net.macOf(i),
      dir: nodeDir,
      consoleLog: join(nodeDir, 'console.log'),
    };
  });
  const cluster: QemuCluster = {
    workspaceDir: ws,
    namespace: net.namespace,
    hostInterface: net.hostInterface,
    subnet: net.subnet,
    hostAddress: net.hostAddress,
    nodes,
    ekCa: { rootPem: '', issuerPem: '' },
  };
  writeFileSync(join(dir, 'cluster.json'), `${JSON.stringify(cluster, null, 2)}\n`);

  const caDir = join(dir, 'ca');
  for (const node of nodes) {
    mkdirSync(node.dir, { recursive: true, mode: 0o700 });
    progress(`${node.name}: manufacturing TPM (EK certificate from the workspace CA)`);
    await manufactureTpm(join(node.dir, 'tpm'), caDir, node.name, join(node.dir, 'ek')).catch(
      (err: Error) => {
        throw new Error(`node ${node.name}: ${err.message}; run terminate to clean up`);
      },
    );
  }
  // The provider made each TPM and its EK certificates: it knows which EK is which node, and says so, signed with
  // the operator's key, in every node's metadata (the JoinService admits by it; common/contracts/owner.ts).
  const owner = spec.ownerSeed
    ? {
        owner: ownerPublicKeyText(spec.ownerSeed),
        inventory: signInventory(
          nodes.map((n) => ({ name: n.name, role: n.role, eks: ekHashesIn(join(n.dir, 'ek')) })),
          spec.ownerSeed,
          spec.inventorySerial ?? 1,
        ),
      }
    : {};
  const ca = await readLocalCa(caDir);
  cluster.ekCa = { rootPem: ca.rootPem, issuerPem: ca.issuerPem };
  // the agents' JoinServices check peers' EK certificates against this CA (agent.json ekCaCertificates)
  writeFileSync(join(dir, 'ek-ca.pem'), ca.rootPem + ca.issuerPem);

  const started = new Map<string, number>();
  for (const [i, node] of nodes.entries()) {
    const fail = (err: unknown): never => {
      throw new Error(
        `node ${node.name}: ${(err as Error).message}; console log ${node.consoleLog}; run terminate to clean up`,
      );
    };
    try {
      // the node's own writable disk on top of the shared, read-only image
      await run(`node ${node.name}: create disk`, 'qemu-img', [
        'create',
        '-q',
        '-f',
        'qcow2',
        '-F',
        'raw',
        '-b',
        disk,
        join(node.dir, 'disk.qcow2'),
      ]);
      copyFileSync(OVMF_VARS, join(node.dir, 'vars.fd'));
      const metadata = nodeMetadata(node, nodes, {
        initSecretHash: spec.initSecretHash,
        joinServicePort: port,
        owner,
      });
      writeFileSync(join(node.dir, 'metadata.json'), `${JSON.stringify(metadata)}\n`);
      writeFileSync(
        join(node.dir, 'network'),
        `hostname=${node.name}\naddress=${node.address}/${net.prefix}\ngateway=${net.hostAddress}\n`,
      );
      const tpmSocket = join(rt, `${node.name}.tpm`);
      await startSwtpm(
        join(node.dir, 'tpm'),
        tpmSocket,
        join(node.dir, 'swtpm.pid'),
        join(node.dir, 'swtpm.log'),
      );
      progress(`${node.name}: starting VM (${cpus} vCPU, ${memoryMiB} MiB) at ${node.address}`);
      started.set(node.name, Date.now());
      await startVm({
        name: node.name,
        boot: {
          kind: 'ovmf',
          disk: join(node.dir, 'disk.qcow2'),
          diskFormat: 'qcow2',
          varsFile: join(node.dir, 'vars.fd'),
        },
        cpus,
        memoryMiB,
        consoleLog: node.consoleLog,
        pidFile: join(node.dir, 'qemu.pid'),
        qmpSocket: join(rt, `${node.name}.qmp`),
        tpmSocket,
        fwCfg: {
          [FW_CFG.metadata]: join(node.dir, 'metadata.json'),
          [FW_CFG.network]: join(node.dir, 'network'),
          [FW_CFG.ekCa]: join(dir, 'ek-ca.pem'),
        },
        nic: { tap: net.tapOf(i), mac: node.mac },
        netns: net.namespace,
      });
    } catch (err) {
      fail(err);
    }
  }
  writeFileSync(join(dir, 'cluster.json'), `${JSON.stringify(cluster, null, 2)}\n`);

  if (spec.waitForAgent ?? true) {
    const timeout = spec.readyTimeoutMs ?? 600_000;
    progress(`waiting for ${nodes.length} agent(s) to be ready (TCG: about 1-2 min)`);
    await Promise.all(
      nodes.map(async (node) => {
        const pidFile = join(node.dir, 'qemu.pid');
        const alive = () => {
          const pid = readPid(pidFile);
          return pid !== undefined && isOurProcess(pid, dir);
        };
        const m = await waitForConsole(
          node.name,
          node.consoleLog,
          READY_MARKER,
          timeout,
          started.get(node.name) ?? Date.now(),
          alive,
        );
        node.readySeconds = m.seconds;
        progress(`${node.name}: agent ready after ${m.seconds.toFixed(1)} s`);
      }),
    );
    writeFileSync(join(dir, 'cluster.json'), `${JSON.stringify(cluster, null, 2)}\n`);
  }
  return cluster;
}

/**
 * Stops every VM and swtpm of the workspace, deletes its network and removes <workspace>/qemu.
 * Safe to call again, and on a half-created cluster.
 */
export async function terminateNodes(
  workspaceDir: string,
  onProgress?: (message: string) => void,
): Promise<void> {
  const ws = resolve(workspaceDir);
  const dir = providerDir(ws);
  const progress = onProgress ?? (() => undefined);
  const nodeDirs = existsSync(dir)
    ? readdirSync(dir, { withFileTypes: true })
        .filter((d) => d.isDirectory() && d.name !== 'ca')
        .map((d) => join(dir, d.name))
    : [];
  await Promise.all(
    nodeDirs.map(async (nodeDir) => {
      for (const pidName of ['qemu.pid', 'swtpm.pid']) {
        const pid = readPid(join(nodeDir, pidName));
        if (pid !== undefined && isOurProcess(pid, dir)) {
          progress(
            `stopping ${pidName.replace('.pid', '')} of ${nodeDir.slice(dir.length + 1)} (pid ${pid})`,
          );
          await stopProcess(pid, dir);
        }
      }
    }),
  );
  const server = readPid(join(dir, SERVER_PID));
  if (server !== undefined && isOurProcess(server, dir)) {
    progress(`stopping the release component server (pid ${server})`);
    await stopProcess(server, dir);
  }
  await deleteNetwork(networkFor(ws));
  rmSync(runtimeDir(ws), { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}
