// The VM cluster end to end, as an operator drives it: build the image (cached), config generate, create
// 1 control plane + 1 worker (QEMU/TCG, OVMF measured boot, one swtpm each), init, the worker joins; then a
// tampered image (one changed kernel command line) is refused by the CLI with the PCR named; terminate leaves
// nothing behind. Kubernetes reaches the VMs as components over HTTP by URL + SHA-256 (never part of the image):
//   (default)                       the real thing, built by scripts/build-kubernetes.sh and
//                                   scripts/build-kubernetes-images.sh (cached by version): kubeadm, kubelet, the
//                                   control plane and CoreDNS as images imported into containerd. Both nodes turn
//                                   Ready, a pod on the worker reaches a pod on the control plane across the pod
//                                   network, and CoreDNS resolves a service.
//   SEXTANT_E2E_KUBERNETES=standin  the kubeadm stand-in from test/kubeadm: the attested flow only (not re-run
//                                   since the stand-in runs kubeadm's preflight, which wants a kubelet on the node).
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { loadConfig, saveConfig } from '../../cli/config/file.js';
import { loadState } from '../../cli/workspace/state.js';
import { clusterPcrValue } from '../../common/cluster-pcr.js';
import { kubeadmStandin } from '../harness/cluster-kit.js';
import { realKubernetesPayload, servePayload, TEST_IMAGE } from './kubernetes-payload.js';

const run = promisify(execFile);
const repo = join(import.meta.dirname, '..', '..');
const REAL = process.env.SEXTANT_E2E_KUBERNETES !== 'standin';

/** The Kubernetes build (cached by version: seconds when it exists): binaries dir, images dir, version. */
async function kubernetesBuild(): Promise<{ dir: string; images: string; version: string }> {
  const opts = { maxBuffer: 64 * 1024 * 1024, timeout: 90 * 60_000 };
  const last = (out: string) => out.trim().split('\n').pop() ?? '';
  const dir = last((await run('bash', [join(repo, 'scripts/build-kubernetes.sh')], opts)).stdout);
  const images = last(
    (await run('bash', [join(repo, 'scripts/build-kubernetes-images.sh'), dir], opts)).stdout,
  );
  const env = await readFile(join(dir, 'versions.env'), 'utf8');
  const version = /^KUBERNETES_VERSION=["']?(v[0-9.]+)/m.exec(env)?.[1];
  assert.ok(version, `KUBERNETES_VERSION in ${dir}/versions.env`);
  return { dir, images, version };
}

type Kubectl = (args: string[], input?: string) => Promise<string>;

function kubectlFor(binary: string, kubeconfig: string): Kubectl {
  return (args, input) =>
    new Promise((resolve, reject) => {
      const child = execFile(
        binary,
        ['--kubeconfig', kubeconfig, '--request-timeout=60s', ...args],
        { maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) =>
          err ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
      );
      if (input !== undefined) child.stdin?.end(input);
    });
}

/** Polls `probe` every 5 s until it returns a value; the error names what was awaited and the last failure. */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within ${timeoutMs / 1000} s${last ? ` (last: ${last})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 5000));
  }
}

interface NodeList {
  items: {
    metadata: { name: string };
    spec: { podCIDR?: string };
    status: { conditions?: { type: string; status: string }[] };
  }[];
}

const readyNodes = (list: NodeList) =>
  list.items
    .filter((n) => n.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
    .map((n) => n.metadata.name);

interface PodStatus {
  spec: { nodeName?: string };
  status: { phase?: string; podIP?: string };
}

/** The workload: a web pod on the control plane (the test image, never pulled) and its service. */
function workload(cpName: string): string {
  return `apiVersion: v1
kind: Pod
metadata: {name: e2e-web, labels: {app: e2e-web}}
spec:
  nodeSelector: {kubernetes.io/hostname: ${cpName}}
  tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]
  containers:
  - name: web
    image: ${TEST_IMAGE}
    imagePullPolicy: Never
    args: [serve, '8080']
    ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: e2e-web}
spec:
  selector: {app: e2e-web}
  ports: [{port: 80, targetPort: 8080}]
`;
}

/** A client pod on the worker: the web pod by its IP (pod network), the service by name (CoreDNS), then by name. */
function clientPod(workerName: string, webIp: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'e2e-client' },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': workerName },
      restartPolicy: 'Never',
      containers: [
        {
          name: 'client',
          image: TEST_IMAGE,
          imagePullPolicy: 'Never',
          // netcheck retries each step (30 x 2 s): the route to the other node's pod range appears within seconds
          args: ['client', `${webIp}:8080`, 'e2e-web.default.svc.cluster.local'],
        },
      ],
    },
  });
}

/** Seconds kubeadm took on a node, from its agent's journal entry ("kubeadm done", durationMs) on the console. */
async function kubeadmSeconds(consoleLog: string, command: string): Promise<number | undefined> {
  const text = await readFile(consoleLog, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    if (!line.startsWith('{') || !line.includes('kubeadm done')) continue;
    try {
      const e = JSON.parse(line) as Record<string, string>;
      if (e.MESSAGE === 'kubeadm done' && e.COMMAND === command && e.DURATION_MS)
        return Number(e.DURATION_MS) / 1000;
    } catch {
      // a line cut by other console output
    }
  }
  return undefined;
}

async function buildImage(env: NodeJS.ProcessEnv = {}): Promise<{ dir: string; seconds: number }> {
  const t0 = Date.now();
  const { stdout } = await run('bash', [join(repo, 'scripts/image-build.sh')], {
    env: { ...process.env, ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
  return { dir: stdout.trim().split('\n').pop() ?? '', seconds: (Date.now() - t0) / 1000 };
}

/** `sextant …` as a child process; progress goes to this test's output as it comes. */
function sextant(
  ws: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(repo, 'cli/main.ts'), ...args, '--workspace', ws],
      {
        cwd: repo,
        env: { ...process.env, ...env },
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      process.stdout.write(`    ${args[0]}: ${c.toString().trimEnd().replace(/\n/g, '\n    ')}\n`);
    });
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/** The stand-in packed for a node: /usr/local/bin/kubeadm runs the bundle with the image's own Node runtime. */
async function kubeadmTarball(dir: string): Promise<Buffer> {
  const root = join(dir, 'kubeadm-component');
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'lib/kubeadm-standin'), { recursive: true });
  await writeFile(join(root, 'lib/kubeadm-standin/kubeadm'), await readFile(kubeadmStandin().path), {
    mode: 0o755,
  });
  await writeFile(
    join(root, 'bin/kubeadm'),
    '#!/bin/sh\nexec /usr/lib/sextant/node/bin/node /usr/local/lib/kubeadm-standin/kubeadm "$@"\n',
    { mode: 0o755 },
  );
  await run('tar', [
    '-C',
    root,
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '-czf',
    join(dir, 'kubeadm.tar.gz'),
    'bin',
    'lib',
  ]);
  return readFile(join(dir, 'kubeadm.tar.gz'));
}

function serve(body: Buffer, host: string): Promise<Server> {
  const server = createServer((_req, res) => res.end(body));
  return new Promise((resolve) => server.listen(0, host, () => resolve(server)));
}

function pcrLines(verifyOutput: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const m of verifyOutput.matchAll(/^PCR\s+(\d+): ([0-9a-f]{64})$/gm)) out.set(Number(m[1]), m[2]!);
  return out;
}

async function leftovers(ws: string): Promise<string[]> {
  const { stdout } = await run('ps', ['-eo', 'pid,args']).catch(() => ({ stdout: '' }));
  return stdout.split('\n').filter((l) => l.includes(ws) && /qemu|swtpm/.test(l));
}

test(`VM cluster (${REAL ? 'real Kubernetes' : 'kubeadm stand-in'}): create, init, the worker joins${REAL ? ' and turns Ready, pods reach each other, CoreDNS resolves' : ''}; a tampered image is refused; terminate cleans up`, {
  timeout: (REAL ? 80 : 40) * 60_000,
}, async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'sextant-e2e-'));
  const ws = join(work, 'cluster');
  const tampered = join(work, 'tampered');
  await mkdir(ws);
  await mkdir(tampered);
  const servers: Server[] = [];
  t.after(async () => {
    for (const s of servers) s.close();
    await sextant(ws, ['terminate']);
    await sextant(tampered, ['terminate']);
    await rm(work, { recursive: true, force: true });
  });

  const k8s = REAL ? await kubernetesBuild() : undefined;
  if (k8s) console.log(`kubernetes ${k8s.version}: ${k8s.dir}, images ${k8s.images}`);
  const image = await buildImage();
  console.log(`image ${image.dir} in ${image.seconds.toFixed(1)} s`);
  const t0 = Date.now();
  await run('bash', [join(repo, 'scripts/image-measurements.sh'), image.dir], {
    maxBuffer: 16 * 1024 * 1024,
  });
  console.log(`measurements ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const measurementsFile = join(image.dir, 'measurements.json');

  assert.equal(
    (await sextant(ws, ['config', 'generate', 'qemu', '--measurements', measurementsFile])).code,
    0,
  );
  const config = await loadConfig(ws);
  config.nodes = { controlPlanes: 1, workers: 1 };
  config.provider.qemu.image = image.dir;
  if (k8s) config.kubernetes.version = k8s.version;
  await saveConfig(ws, config);

  const tCreate = Date.now();
  const created = await sextant(ws, ['create']);
  assert.equal(created.code, 0, created.stderr);
  console.log(`create: ${((Date.now() - tCreate) / 1000).toFixed(1)} s`);
  const [cpLine, workerLine] = created.stdout.trim().split('\n');
  const cpAddress = cpLine!.split('\t')[2]!;
  const workerName = workerLine!.split('\t')[0]!;
  const workerAddress = workerLine!.split('\t')[2]!;

  // The component server listens where the VMs reach the host: the provider's host address on their subnet.
  const cluster = JSON.parse(await readFile(join(ws, 'qemu/cluster.json'), 'utf8')) as {
    hostAddress: string;
  };
  const withComponent = await loadConfig(ws);
  if (k8s) {
    const payload = await realKubernetesPayload(k8s.dir, k8s.images, work);
    const { server, baseUrl } = await servePayload(payload, cluster.hostAddress);
    servers.push(server);
    withComponent.kubernetes.components = await payload.components(baseUrl);
  } else {
    const tarball = await kubeadmTarball(work);
    const server = await serve(tarball, cluster.hostAddress);
    servers.push(server);
    withComponent.kubernetes.components = [
      {
        url: `http://${cluster.hostAddress}:${(server.address() as AddressInfo).port}/kubeadm.tar.gz`,
        sha256: createHash('sha256').update(tarball).digest('hex'),
        installPath: '/usr/local',
        extract: true,
      },
    ];
  }
  await saveConfig(ws, withComponent);

  const tInit = Date.now();
  const init = await sextant(ws, ['init', '--timeout', REAL ? '2700' : '900']);
  assert.equal(init.code, 0, init.stderr);
  const initSeconds = (Date.now() - tInit) / 1000;
  const state = await loadState(ws);
  assert.ok(state);
  const pcr15 = clusterPcrValue(state.clusterId).toString('hex');
  const cpName = cpLine!.split('\t')[0]!;
  const cpConsole = join(ws, 'qemu', cpName, 'console.log');
  const workerConsole = join(ws, 'qemu', workerName, 'console.log');
  if (k8s) {
    console.log(
      `init: ${initSeconds.toFixed(1)} s (kubeadm init on the node: ${await kubeadmSeconds(cpConsole, 'init')} s)`,
    );
  }

  if (k8s) {
    // Real Kubernetes: both nodes Ready (kubelet up, CNI config from sextant-podnet), then the workload.
    const kubectl = kubectlFor(join(k8s.dir, 'bin/kubectl'), join(ws, 'sextant-admin.conf'));
    const tReadyWait = Date.now();
    const ready = await until('both nodes Ready', 30 * 60_000, async () => {
      const list = JSON.parse(await kubectl(['get', 'nodes', '-o', 'json'])) as NodeList;
      const names = readyNodes(list);
      return names.includes(cpName) && names.includes(workerName) ? list : undefined;
    });
    console.log(
      `both nodes Ready ${((Date.now() - tReadyWait) / 1000).toFixed(1)} s after init returned ` +
        `(${((Date.now() - tInit) / 1000).toFixed(1)} s after init started); ` +
        `kubeadm join on the worker: ${await kubeadmSeconds(workerConsole, 'join')} s`,
    );
    console.log(await kubectl(['get', 'nodes', '-o', 'wide']));
    const cidrs = new Map(ready.items.map((n) => [n.metadata.name, n.spec.podCIDR]));
    assert.ok(cidrs.get(cpName) && cidrs.get(workerName), 'both nodes have a pod CIDR');

    const tPods = Date.now();
    await kubectl(['apply', '-f', '-'], workload(cpName));
    const web = await until('e2e-web Running', 10 * 60_000, async () => {
      const pod = JSON.parse(await kubectl(['get', 'pod', 'e2e-web', '-o', 'json'])) as PodStatus;
      return pod.status.phase === 'Running' && pod.status.podIP ? pod : undefined;
    });
    assert.equal(web.spec.nodeName, cpName);
    await kubectl(['apply', '-f', '-'], clientPod(workerName, web.status.podIP!));
    const client = await until('e2e-client finished', 10 * 60_000, async () => {
      const pod = JSON.parse(await kubectl(['get', 'pod', 'e2e-client', '-o', 'json'])) as PodStatus;
      return pod.status.phase === 'Succeeded' || pod.status.phase === 'Failed' ? pod : undefined;
    });
    const logs = await kubectl(['logs', 'e2e-client']);
    console.log(`workload done in ${((Date.now() - tPods) / 1000).toFixed(1)} s; client output:\n${logs}`);
    assert.equal(client.status.phase, 'Succeeded', logs);
    assert.equal(client.spec.nodeName, workerName, 'the client ran on the worker');
    const [direct, lookup, viaService] = logs.split('---\n');
    assert.match(
      direct ?? '',
      /served by e2e-web/,
      'a pod on the worker reached the pod on the control plane',
    );
    const clusterIp = (
      await kubectl(['get', 'service', 'e2e-web', '-o', 'jsonpath={.spec.clusterIP}'])
    ).trim();
    assert.ok(
      clusterIp && (lookup ?? '').includes(clusterIp),
      `CoreDNS resolved the service to ${clusterIp}`,
    );
    assert.match(viaService ?? '', /served by e2e-web/, 'the service name reaches the pod');
  }

  // The worker joined: the control plane's API server knows it (asked with the admin kubeconfig init wrote).
  let nodes: string[] = [];
  for (let i = 0; i < 180 && !nodes.includes(workerName); i++) {
    const listed = await run('kubectl', [
      '--kubeconfig',
      join(ws, 'sextant-admin.conf'),
      'get',
      '--raw',
      '/api/v1/nodes',
    ]).catch(() => ({ stdout: '{"items":[]}' }));
    nodes = (JSON.parse(listed.stdout) as { items: { metadata: { name: string } }[] }).items.map(
      (n) => n.metadata.name,
    );
    if (!nodes.includes(workerName)) await new Promise((r) => setTimeout(r, 5000));
  }
  assert.ok(nodes.includes(workerName), `worker ${workerName} registered (nodes: ${nodes.join(', ')})`);
  console.log(
    `init: ${initSeconds.toFixed(1)} s; init → worker joined: ${((Date.now() - tInit) / 1000).toFixed(1)} s`,
  );

  // Both attest with the image's firmware PCRs (non-zero under OVMF) and PCR 15 = the cluster ID's extend.
  const expected = (
    JSON.parse(await readFile(measurementsFile, 'utf8')) as {
      measurements: Record<string, { expected: string; warnOnly: boolean }>;
    }
  ).measurements;
  for (const address of [cpAddress, workerAddress]) {
    const verified = await sextant(ws, ['verify', '--endpoint', `${address}:9000`]);
    assert.equal(verified.code, 0, verified.stderr);
    const pcrs = pcrLines(verified.stdout);
    assert.notEqual(pcrs.get(0), '00'.repeat(32), `${address}: PCR 0 (firmware) measured`);
    for (const [index, m] of Object.entries(expected)) {
      if (!m.warnOnly) assert.equal(pcrs.get(Number(index)), m.expected, `${address}: PCR ${index}`);
    }
    assert.equal(pcrs.get(15), pcr15, `${address}: PCR 15`);
  }

  // The journal inside the control plane holds the agent's structured lines (forwarded to its serial console).
  const consoleLog = await readFile(cpConsole, 'utf8');
  const entries = consoleLog
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, string>];
      } catch {
        return [];
      }
    })
    .filter((e) => e.SYSLOG_IDENTIFIER === 'sextant-agent');
  const initialized = entries.find((e) => e.MESSAGE === 'cluster initialized');
  assert.ok(initialized, 'the agent journaled "cluster initialized"');
  assert.equal(initialized.PRIORITY, '6');

  assert.equal((await sextant(ws, ['terminate'])).code, 0);
  assert.deepEqual(await leftovers(ws), [], 'no qemu or swtpm of the workspace left');

  // A tampered image: one more word on the kernel command line. Same config and measurements, its own workspace.
  const bad = await buildImage({ SEXTANT_CMDLINE_EXTRA: 'sextant.tampered=1' });
  await buildImage(); // image/build/current back to the real image
  // the same config and what config generate put beside it: the measurements, their signature, the pinned key
  for (const f of (await readdir(ws)).filter(
    (n) => n === 'sextant-conf.yaml' || n.startsWith('sextant-measurements'),
  )) {
    await writeFile(join(tampered, f), await readFile(join(ws, f)));
  }
  const tamperedConfig = await loadConfig(tampered);
  tamperedConfig.nodes = { controlPlanes: 1, workers: 0 };
  tamperedConfig.provider.qemu.image = bad.dir;
  await saveConfig(tampered, tamperedConfig);
  assert.equal((await sextant(tampered, ['create'])).code, 0);
  const refused = await sextant(tampered, ['init', '--timeout', '300']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /nothing was sent: .*PCR (4|11): expected/);
  assert.equal((await sextant(tampered, ['terminate'])).code, 0);
  assert.equal((await sextant(tampered, ['terminate'])).code, 0, 'a second terminate is harmless');
  assert.deepEqual(await leftovers(tampered), []);
});
