// The VM cluster end to end, as an operator drives it: build the image (cached), config generate, create
// 1 control plane + 1 worker (QEMU/TCG, OVMF measured boot, one swtpm each), init, the worker joins; then a
// tampered image (one changed kernel command line) is refused by the CLI with the PCR named; terminate leaves
// nothing behind. kubeadm is the stand-in from test/kubeadm, served to the VMs as a component over HTTP by URL +
// SHA-256 (never part of the image).
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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

const run = promisify(execFile);
const repo = join(import.meta.dirname, '..', '..');

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

test('VM cluster: create, init, the worker joins; a tampered image is refused; terminate cleans up', {
  timeout: 40 * 60_000,
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
  const tarball = await kubeadmTarball(work);
  const server = await serve(tarball, cluster.hostAddress);
  servers.push(server);
  const withComponent = await loadConfig(ws);
  withComponent.kubernetes.components = [
    {
      url: `http://${cluster.hostAddress}:${(server.address() as AddressInfo).port}/kubeadm.tar.gz`,
      sha256: createHash('sha256').update(tarball).digest('hex'),
      installPath: '/usr/local',
      extract: true,
    },
  ];
  await saveConfig(ws, withComponent);

  const tInit = Date.now();
  const init = await sextant(ws, ['init', '--timeout', '900']);
  assert.equal(init.code, 0, init.stderr);
  const initSeconds = (Date.now() - tInit) / 1000;
  const state = await loadState(ws);
  assert.ok(state);
  const pcr15 = clusterPcrValue(state.clusterId).toString('hex');

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
  const consoleLog = await readFile(join(ws, 'qemu', cpLine!.split('\t')[0]!, 'console.log'), 'utf8');
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
  await writeFile(join(tampered, 'sextant-conf.yaml'), await readFile(join(ws, 'sextant-conf.yaml')));
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
