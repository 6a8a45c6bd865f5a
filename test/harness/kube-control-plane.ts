// Test harness: a real Kubernetes control plane (etcd, kube-apiserver, optionally kube-controller-manager)
// as processes inside a test network namespace, for the namespace tiers. The real kubeadm (v1.34, built by
// scripts/build-kubernetes.sh) writes the PKI, kubeconfigs and static Pod manifests into a rootfs directory;
// each component then runs with exactly the command line of its manifest, its /etc/kubernetes and
// /var/lib/etcd paths mapped into that rootfs. No kubelet, no container runtime: the processes stand in for
// the static Pods, nothing else does. In a namespace of its own it uses kubeadm's default ports (2379, 6443,
// 10257); on the host's loopback (no namespace given: for in-process clients) free ports, set through the
// kubeadm config (bindPort, controlPlaneEndpoint, etcd/apiServer/controllerManager extraArgs).
import { execFile, execFileSync, type SpawnOptions, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { createWriteStream, existsSync, linkSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { rewriteKubeconfigServer } from '../../agent/kubeadm/kubeconfig.js';
import type { ExecOptions, ExecResult, NodeNamespace } from './netns.js';
import { freePort } from './ports.js';

const REPO = resolve(import.meta.dirname, '../..');
export const KUBERNETES_VERSION = 'v1.34.4';

/**
 * The directory of the built Kubernetes binaries: $SEXTANT_K8S_BIN, or what scripts/build-kubernetes.sh
 * prints (a cached run takes seconds; CI builds it before the tests).
 */
export function kubernetesBinaries(): string {
  if (process.env.SEXTANT_K8S_BIN) return process.env.SEXTANT_K8S_BIN;
  const dir = execFileSync('bash', [join(REPO, 'scripts/build-kubernetes.sh')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
    .toString()
    .trim();
  return join(dir, 'bin');
}

export type Component = 'etcd' | 'kube-apiserver' | 'kube-controller-manager';

export interface HttpResult {
  status: number;
  body: unknown;
  text: string;
}

export interface RealControlPlane {
  rootfs: string;
  address: string;
  /** https://<address>:<port> */
  server: string;
  caPem: string;
  /** The admin kubeconfig kubeadm wrote (host path; its server is `server`). */
  adminKubeconfig: string;
  /** The admin's client certificate and key (PEM), for an in-process client on the host's loopback. */
  admin: { certPem: string; keyPem: string };
  /** Runs the real kubeadm inside the namespace with --rootfs (of this node unless given). */
  kubeadm(args: string[], rootfs?: string): Promise<ExecResult>;
  /** An API request from inside the namespace, as the admin (client certificate) or with a bearer token. */
  api(method: string, path: string, body?: unknown, auth?: { token: string }): Promise<HttpResult>;
  /** The tail of a component's log, for failure messages. */
  logTail(component: Component): string;
  stop(): Promise<void>;
}

/** Maps the absolute in-node paths of a manifest's command line into the rootfs. */
function mapPaths(arg: string, rootfs: string): string {
  return arg.replace(
    /(^|=|,)(\/etc\/kubernetes|\/var\/lib\/etcd)/g,
    (_m, pre, path) => `${pre}${rootfs}${path}`,
  );
}

function manifestCommand(rootfs: string, component: Component): string[] {
  const m = parse(readFileSync(join(rootfs, `etc/kubernetes/manifests/${component}.yaml`), 'utf8')) as {
    spec: { containers: { command: string[] }[] };
  };
  const [cmd, ...args] = m.spec.containers[0]!.command;
  return [join(rootfs, 'usr/local/bin', cmd!), ...args.map((a) => mapPaths(a, rootfs))];
}

interface Ports {
  api: number;
  etcdClient: number;
  etcdPeer: number;
  etcdMetrics: number;
  controllerManager: number;
}
const DEFAULT_PORTS: Ports = {
  api: 6443,
  etcdClient: 2379,
  etcdPeer: 2380,
  etcdMetrics: 2381,
  controllerManager: 10257,
};

/**
 * kubeadm refuses a loopback advertise address ("unable to select an IP from lo network interface"), so on
 * the host the control plane advertises TEST-NET-1's 192.0.2.1 (RFC 5737: documentation only, never routed;
 * nothing here dials it — kubeconfigs and etcd use the loopback) and listens on 127.0.0.1.
 */
const HOST_ADVERTISE = '192.0.2.1';

function clusterConfig(advertise: string, address: string, p: Ports): string {
  // Only ports that differ from kubeadm's defaults are overridden, so a namespace runs kubeadm's own flags.
  const moved = p.etcdClient !== DEFAULT_PORTS.etcdClient;
  const etcdArgs = moved
    ? `
    extraArgs:
    - {name: listen-client-urls, value: "https://${address}:${p.etcdClient}"}
    - {name: advertise-client-urls, value: "https://${address}:${p.etcdClient}"}
    - {name: listen-peer-urls, value: "https://${address}:${p.etcdPeer}"}
    - {name: initial-advertise-peer-urls, value: "https://${address}:${p.etcdPeer}"}
    - {name: initial-cluster, value: "cp-0=https://${address}:${p.etcdPeer}"}
    - {name: listen-metrics-urls, value: "http://${address}:${p.etcdMetrics}"}`
    : '';
  const apiArgs = moved
    ? `\n  extraArgs: [{name: etcd-servers, value: "https://${address}:${p.etcdClient}"}]`
    : '';
  const cmArgs = moved
    ? `\ncontrollerManager: {extraArgs: [{name: secure-port, value: "${p.controllerManager}"}]}`
    : '';
  return `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: ${advertise}, bindPort: ${p.api}}
nodeRegistration: {name: cp-0, criSocket: "unix:///run/containerd/containerd.sock"}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: ${KUBERNETES_VERSION}
clusterName: sextant-test
controlPlaneEndpoint: "${address}:${p.api}"
networking: {serviceSubnet: 10.96.0.0/12, podSubnet: 10.244.0.0/16}
etcd:
  local:
    dataDir: /var/lib/etcd${etcdArgs}
apiServer:
  certSANs: [${address}]${apiArgs}${cmArgs}
`;
}

/** The host's own namespace, as a NodeNamespace: commands run here, long-lived ones in their own group. */
function hostLoopback(): NodeNamespace {
  return {
    name: 'host',
    address: '127.0.0.1',
    veth: 'lo',
    exec: (cmd: string, args: string[], opts: ExecOptions = {}) =>
      new Promise<ExecResult>((done) => {
        execFile(
          cmd,
          args,
          { timeout: opts.timeoutMs ?? 0, maxBuffer: 64 << 20, encoding: 'utf8' },
          (err, stdout, stderr) => {
            const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
            done({ stdout, stderr, exitCode: code });
          },
        );
      }),
    spawn: (cmd: string, args: string[], opts: SpawnOptions = {}) =>
      spawn(cmd, args, { ...opts, detached: true }),
    setLinkUp: async () => {
      throw new Error('the host loopback has no link to pull');
    },
  };
}

/** Hard-links (or copies, across filesystems) a binary into the rootfs. */
async function install(bin: string, rootfs: string, name: string): Promise<void> {
  const dest = join(rootfs, 'usr/local/bin', name);
  try {
    linkSync(join(bin, name), dest);
  } catch {
    await copyFile(join(bin, name), dest);
  }
}

/**
 * Starts the control plane in `ns` (kubeadm's default ports), or on the host's loopback with free ports when
 * `ns` is undefined (then an in-process client reaches `server` directly).
 */
export async function startRealControlPlane(
  nsOrHost: NodeNamespace | undefined,
  options: { components?: Component[]; readyTimeoutMs?: number } = {},
): Promise<RealControlPlane> {
  const ns = nsOrHost ?? hostLoopback();
  const ports: Ports = nsOrHost
    ? DEFAULT_PORTS
    : {
        api: await freePort(),
        etcdClient: await freePort(),
        etcdPeer: await freePort(),
        etcdMetrics: await freePort(),
        controllerManager: await freePort(),
      };
  const components = options.components ?? ['etcd', 'kube-apiserver'];
  const bin = kubernetesBinaries();
  const rootfs = await mkdtemp(join(tmpdir(), 'sextant-k8s-cp-'));
  mkdirSync(join(rootfs, 'usr/local/bin'), { recursive: true });
  mkdirSync(join(rootfs, 'etc'), { recursive: true });
  for (const b of ['kubeadm', ...components]) await install(bin, rootfs, b);
  const advertise = nsOrHost ? ns.address : HOST_ADVERTISE;
  writeFileSync(join(rootfs, 'etc/kubeadm.yaml'), clusterConfig(advertise, ns.address, ports));

  const kubeadm = (args: string[], root = rootfs) =>
    ns.exec(join(root, 'usr/local/bin/kubeadm'), [...args, '--rootfs', root], { timeoutMs: 120_000 });
  const phase = async (...args: string[]) => {
    const r = await kubeadm(['init', 'phase', ...args, '--config', '/etc/kubeadm.yaml']);
    if (r.exitCode !== 0) throw new Error(`kubeadm init phase ${args.join(' ')}: ${r.stderr || r.stdout}`);
  };
  await phase('certs', 'all');
  await phase('kubeconfig', 'admin');
  await phase('kubeconfig', 'super-admin');
  await phase('etcd', 'local');
  await phase('control-plane', 'apiserver');
  if (components.includes('kube-controller-manager')) {
    await phase('kubeconfig', 'controller-manager');
    await phase('control-plane', 'controller-manager');
    // kubeadm points a component's local kubeconfig at the advertise address, which on the host is a placeholder
    // nobody listens on: the controller-manager would never reach the API server (no signer, no token cleaner).
    if (!nsOrHost) {
      const conf = join(rootfs, 'etc/kubernetes/controller-manager.conf');
      writeFileSync(conf, rewriteKubeconfigServer(readFileSync(conf), `${ns.address}:${ports.api}`), {
        mode: 0o600,
      });
    }
  }

  const logs = new Map<Component, string>();
  const children = components.map((c) => {
    const [cmd, ...args] = manifestCommand(rootfs, c);
    const logFile = join(rootfs, `${c}.log`);
    logs.set(c, logFile);
    const child = ns.spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = createWriteStream(logFile);
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    return child;
  });

  const pki = (f: string) => readFileSync(join(rootfs, 'etc/kubernetes/pki', f), 'utf8');
  const caPem = pki('ca.crt');
  const admin = parse(readFileSync(join(rootfs, 'etc/kubernetes/admin.conf'), 'utf8')) as {
    users: { user: Record<string, string> }[];
  };
  const clientCert = Buffer.from(admin.users[0]!.user['client-certificate-data']!, 'base64').toString();
  const clientKey = Buffer.from(admin.users[0]!.user['client-key-data']!, 'base64').toString();
  const server = `https://${ns.address}:${ports.api}`;

  // Requests go through `ip netns exec … node` so they leave from inside the namespace.
  const api = async (method: string, path: string, body?: unknown, auth?: { token: string }) => {
    const script = `
      const https = require('node:https');
      const a = JSON.parse(process.argv[1]);
      const req = https.request(a.url, { method: a.method, ca: a.ca, cert: a.cert, key: a.key,
        headers: { 'content-type': 'application/json', ...(a.token ? { authorization: 'Bearer ' + a.token } : {}) },
        timeout: 10000 }, (res) => { let t = ''; res.on('data', (c) => (t += c));
        res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, text: t }))); });
      req.on('error', (e) => { process.stdout.write(JSON.stringify({ status: 0, text: String(e) })); });
      req.end(a.body);`;
    const arg = JSON.stringify({
      url: `${server}${path}`,
      method,
      ca: caPem,
      ...(auth ? { token: auth.token } : { cert: clientCert, key: clientKey }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const r = await ns.exec(process.execPath, ['-e', script, arg], { timeoutMs: 20_000 });
    const { status, text } = JSON.parse(r.stdout || '{"status":0,"text":""}') as {
      status: number;
      text: string;
    };
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (e.g. /readyz's "ok")
    }
    return { status, body: parsed, text };
  };

  const logTail = (c: Component) => {
    const f = logs.get(c);
    return f && existsSync(f) ? readFileSync(f, 'utf8').split('\n').slice(-15).join('\n') : '';
  };
  const stop = async () => {
    for (const child of children) {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            const t = setTimeout(() => {
              try {
                if (child.pid) process.kill(-child.pid, 'SIGKILL');
              } catch {
                // already gone
              }
              done();
            }, 5_000);
            child.once('exit', () => {
              clearTimeout(t);
              done();
            });
          }),
      ),
    );
    await rm(rootfs, { recursive: true, force: true });
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000);
  let last: HttpResult = { status: 0, body: '', text: '' };
  while (Date.now() < deadline) {
    const dead = children.findIndex((c) => c.exitCode !== null || c.signalCode !== null);
    if (dead >= 0) {
      const c = components[dead]!;
      await stop();
      throw new Error(`${c} exited before the API server was ready:\n${logTail(c)}`);
    }
    last = await api('GET', '/readyz');
    if (last.status === 200) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  if (last.status !== 200) {
    const tail = logTail('kube-apiserver');
    await stop();
    throw new Error(`kube-apiserver not ready: ${last.status} ${last.text}\n${tail}`);
  }
  // The serving certificate kubeadm made names the node's address (what clients pin and check).
  if (!new X509Certificate(pki('apiserver.crt')).checkIP(ns.address)) {
    await stop();
    throw new Error(`apiserver.crt does not name ${ns.address}`);
  }
  // What kubeadm init does once the API server answers: its config into the cluster — and, on the first use
  // of admin.conf, the kubeadm:cluster-admins binding (through super-admin.conf) without which admin.conf's
  // user may do nothing.
  try {
    await phase('upload-config', 'kubeadm');
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    rootfs,
    address: ns.address,
    server,
    caPem,
    adminKubeconfig: join(rootfs, 'etc/kubernetes/admin.conf'),
    admin: { certPem: clientCert, keyPem: clientKey },
    kubeadm,
    api,
    logTail,
    stop,
  };
}
