// @tier system: processes (the kubeadm stand-in and its API server, five kubeadm runs with real PKI: 20-60 s)
// The driver against the kubeadm stand-in (test/kubeadm), installed the way production installs kubeadm:
// as a component fetched by URL + SHA-256 into the node's rootfs.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { installComponents } from '../../../agent/components/install.js';
import { caCertHash } from '../../../agent/kubeadm/ca-hash.js';
import { initConfiguration, joinConfiguration } from '../../../agent/kubeadm/config.js';
import {
  readControlPlaneCertificates,
  writeControlPlaneCertificates,
} from '../../../agent/kubeadm/control-plane-certs.js';
import { createKubeadm, type Kubeadm, KubeadmError } from '../../../agent/kubeadm/driver.js';
import { rewriteKubeconfigServer } from '../../../agent/kubeadm/kubeconfig.js';
import { ApiBootstrapTokens } from '../../../agent/kubernetes/bootstrap-token.js';
import type { KubeadmTuning } from '../../../common/contracts/kubeadm-tuning.js';
import { credentialsFromKubeconfig, KubeApi } from '../../../common/kube-api.js';
import {
  prepareStandinNode,
  type ServedComponent,
  serveKubeadmStandin,
  stopStandinDaemons,
} from '../../harness/cluster-kit.js';
import { freePort } from '../../harness/ports.js';
import { recordingLog } from '../../harness/recording-log.js';
import { alive as isRunning, OWNER_PID_ENV } from '../../kubeadm/src/daemon.js';

const VERSION = 'v1.31.4';

// Five kubeadm runs with their API-server daemons: ~30 s on a quiet machine, twice that beside other suites.
describe('kubeadm driver with the stand-in', { timeout: 180_000 }, () => {
  let component: ServedComponent;
  let work: string;
  const rootfses: string[] = [];

  before(async () => {
    component = await serveKubeadmStandin();
    work = await mkdtemp(join(tmpdir(), 'sextant-standin-'));
  });
  afterEach(async () => {
    for (const r of rootfses.splice(0)) await stopStandinDaemons(r);
  });
  after(async () => {
    await component?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** A node: its own rootfs (prepared as a node image would be, unless `bare`) with kubeadm as a component. */
  async function node(
    name: string,
    opts: { tarball?: boolean; env?: NodeJS.ProcessEnv; bare?: boolean } = {},
  ) {
    const rootfs = await mkdtemp(join(work, `${name}-`));
    rootfses.push(rootfs);
    if (!opts.bare) prepareStandinNode(rootfs, VERSION);
    const log = recordingLog();
    await installComponents(
      [
        opts.tarball
          ? {
              url: component.tarUrl,
              sha256: component.tarSha256,
              installPath: '/usr/local/bin',
              extract: true,
            }
          : { url: component.url, sha256: component.sha256, installPath: '/usr/bin/kubeadm', extract: false },
      ],
      { rootfs, log },
    );
    const binary = join(rootfs, opts.tarball ? 'usr/local/bin/kubeadm' : 'usr/bin/kubeadm');
    const env = { [OWNER_PID_ENV]: String(process.pid), ...opts.env };
    // key generation for a whole PKI takes over 30 s on a loaded 2-core host
    const kubeadm = createKubeadm({ binary, rootfs, log, timeoutMs: 120_000, env });
    return { rootfs, log, kubeadm };
  }

  /** A join token made through the stand-in's API server with the admin kubeconfig, as agent/main.ts startJoinService does. */
  async function joinToken(adminConf: Buffer): Promise<string> {
    const api = new KubeApi(credentialsFromKubeconfig(adminConf.toString(), 'admin.conf'));
    try {
      return (await new ApiBootstrapTokens(api).create('standin test')).token;
    } finally {
      api.close();
    }
  }

  async function initCluster(
    k: Kubeadm,
    port: number,
    extra: { certificateKey?: string; ignorePreflightErrors?: string[]; tuning?: KubeadmTuning } = {},
  ) {
    const { ignorePreflightErrors, ...input } = extra;
    let yaml = initConfiguration({
      nodeName: 'cp-0',
      advertiseAddress: '127.0.0.1',
      bindPort: port,
      clusterName: 'sextant',
      kubernetesVersion: VERSION,
      serviceCidr: '10.96.0.0/12',
      podCidr: '10.244.0.0/16',
      apiServerCertSans: ['127.0.0.1', 'api.sextant.test'],
      controlPlaneEndpoint: `127.0.0.1:${port}`,
      ...input,
    });
    if (ignorePreflightErrors) {
      const docs = parseAllDocuments(yaml);
      const init = docs.find((d) => d.get('kind') === 'InitConfiguration')!;
      init.setIn(['nodeRegistration', 'ignorePreflightErrors'], ignorePreflightErrors);
      yaml = docs.map((d) => d.toString()).join('');
    }
    await k.init(yaml, { uploadCerts: extra.certificateKey !== undefined });
  }

  it('init, admin kubeconfig, token, and a worker join pinned to the CA hash', async () => {
    const cp = await node('cp');
    const port = await freePort();
    await initCluster(cp.kubeadm, port);

    // The stand-in prints only what it did: no kubelet, no static Pods, no add-ons, no RBAC objects.
    const printed = cp.log.lines.join('\n');
    for (const untrue of [
      'The kubelet is healthy',
      'Starting the kubelet',
      'boot up the control plane as static Pods',
      'Applied essential addon',
      'Configured RBAC rules',
      'Pulling images',
    ]) {
      assert.ok(!printed.includes(untrue), `the stand-in claims "${untrue}"`);
    }
    assert.ok(printed.includes('does not start a kubelet'), printed);

    const admin = await cp.kubeadm.adminKubeconfig();
    const rewritten = rewriteKubeconfigServer(admin, `api.sextant.test:${port}`);
    const conf = join(work, 'admin.conf');
    await writeFile(conf, rewritten, { mode: 0o600 });
    const server = execFileSync('kubectl', [
      'config',
      'view',
      '--kubeconfig',
      conf,
      '-o',
      'jsonpath={.clusters[0].cluster.server}',
    ]);
    assert.equal(server.toString(), `https://api.sextant.test:${port}`);

    const caPem = await readFile(join(cp.rootfs, 'etc/kubernetes/pki/ca.crt'));
    const hash = caCertHash(caPem);
    const embedded = Buffer.from(
      parse(admin.toString()).clusters[0].cluster['certificate-authority-data'],
      'base64',
    );
    assert.equal(new X509Certificate(embedded).fingerprint256, new X509Certificate(caPem).fingerprint256);
    assert.ok(
      cp.log.lines.some((l) => l.includes(`--discovery-token-ca-cert-hash ${hash}`)),
      'our hash is the one kubeadm prints',
    );

    // The join token as the JoinService makes it: a Secret through the API with kubeadm's admin kubeconfig.
    const token = await joinToken(admin);
    assert.match(token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);

    const worker = await node('worker', { tarball: true });
    await worker.kubeadm.join(
      joinConfiguration({
        nodeName: 'worker-1',
        nodeIp: '127.0.0.1',
        apiServerEndpoint: `127.0.0.1:${port}`,
        token,
        caCertHashes: [hash],
      }),
    );
    assert.ok(existsSync(join(worker.rootfs, 'etc/kubernetes/kubelet.conf')));
    assert.ok(!worker.log.lines.join('\n').includes(token));
    // The Node exists because the join registered it with the kubelet's new credentials (said so), not
    // because the API server made one up when it signed the CSR.
    assert.ok(worker.log.lines.some((l) => l.includes('registered Node "worker-1" as the kubelet would')));
    const nodes = JSON.parse(
      execFileSync('kubectl', [
        'get',
        '--raw',
        '/api/v1/nodes',
        '--kubeconfig',
        conf,
        '--server',
        `https://127.0.0.1:${port}`,
        '--request-timeout',
        '10s',
      ]).toString(),
    ) as { items: { metadata: { name: string } }[] };
    assert.deepEqual(nodes.items.map((n) => n.metadata.name).sort(), ['cp-0', 'worker-1']);

    // A wrong pin is refused by discovery.
    const intruder = await node('intruder');
    const err = await intruder.kubeadm
      .join(
        joinConfiguration({
          nodeName: 'worker-2',
          nodeIp: '127.0.0.1',
          apiServerEndpoint: `127.0.0.1:${port}`,
          token,
          caCertHashes: [`sha256:${'0'.repeat(64)}`],
        }),
      )
      .catch((e: unknown) => e);
    assert.ok(err instanceof KubeadmError, String(err));
    assert.ok(!err.message.includes(token) && !err.outputTail.join('\n').includes(token));
  });

  it('a control-plane join with the shared certificates handed over (no certificate key, download-certs skipped)', async () => {
    const cp = await node('cp');
    const port = await freePort();
    // tuned as on QEMU: kubeadm takes the profile's timeouts and component flags (the other tests: none)
    await initCluster(cp.kubeadm, port, { tuning: 'qemu-tcg' });
    const token = await joinToken(await cp.kubeadm.adminKubeconfig());
    const hash = caCertHash(await readFile(join(cp.rootfs, 'etc/kubernetes/pki/ca.crt')));
    const cpJoin = async (name: string, k: Kubeadm) =>
      k.join(
        joinConfiguration({
          nodeName: name,
          nodeIp: '127.0.0.1',
          apiServerEndpoint: `127.0.0.1:${port}`,
          token,
          caCertHashes: [hash],
          controlPlane: { advertiseAddress: '127.0.0.1', bindPort: await freePort() },
          tuning: 'qemu-tcg',
        }),
      );

    // Without the certificates on disk and without a key, kubeadm refuses before it makes a CA of its own.
    const bare = await node('cp-bare');
    const err = await cpJoin('cp-9', bare.kubeadm).catch((e: unknown) => e);
    assert.ok(err instanceof KubeadmError, String(err));
    assert.equal(err.phase, 'preflight');
    assert.match(err.outputTail.join('\n'), /certificates that must be shared among control plane instances/);

    // What the join ticket carries, written as the join client writes it.
    const cp2 = await node('cp2');
    const pki = (rootfs: string) => join(rootfs, 'etc/kubernetes/pki');
    await writeControlPlaneCertificates(pki(cp2.rootfs), await readControlPlaneCertificates(pki(cp.rootfs)));
    await cpJoin('cp-1', cp2.kubeadm);
    assert.equal(caCertHash(await readFile(join(pki(cp2.rootfs), 'ca.crt'))), hash);
    assert.ok(!cp2.log.lines.some((l) => l.includes('download-certs')), 'download-certs ran');
    assert.ok(existsSync(join(cp2.rootfs, 'etc/kubernetes/manifests/kube-apiserver.yaml')));
  });

  it("a node without forwarding or a kubelet fails kubeadm's preflight; ignorePreflightErrors makes them warnings", async () => {
    const bare = await node('bare', { bare: true });
    const port = await freePort();
    const err = await initCluster(bare.kubeadm, port).catch((e: unknown) => e);
    assert.ok(err instanceof KubeadmError, String(err));
    assert.equal(err.phase, 'preflight');
    const tail = err.outputTail.join('\n');
    assert.ok(
      tail.includes(
        '[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward does not exist',
      ),
      tail,
    );
    assert.ok(
      tail.includes(
        `[ERROR KubeletVersion]: couldn't get kubelet version: cannot execute 'kubelet --version': exec: "kubelet": executable file not found in $PATH`,
      ),
      tail,
    );
    assert.ok(!existsSync(join(bare.rootfs, 'etc/kubernetes/pki/ca.crt')), 'nothing done past preflight');

    await initCluster(bare.kubeadm, port, {
      ignorePreflightErrors: ['FileContent--proc-sys-net-ipv4-ip_forward', 'KubeletVersion'],
    });
    const printed = bare.log.lines.join('\n');
    assert.ok(printed.includes('[WARNING KubeletVersion]'), printed);
    assert.ok(existsSync(join(bare.rootfs, 'etc/kubernetes/admin.conf')));
  });

  it('an injected phase failure surfaces as KubeadmError with the phase', async () => {
    const cp = await node('cp', { env: { KUBEADM_STANDIN_FAIL_PHASE: 'certs' } });
    const err = await initCluster(cp.kubeadm, await freePort()).catch((e: unknown) => e);
    assert.ok(err instanceof KubeadmError, String(err));
    assert.equal(err.phase, 'certs');
    assert.equal(err.exitCode, 1);
    assert.match(err.message, /kubeadm init failed at phase certs \(exit 1\): error execution phase certs/);
    assert.ok(err.outputTail.length > 0);
    await cp.kubeadm.reset();
  });

  it('its API-server daemon outlives kubeadm but ends once the run that owns the node is killed', async () => {
    const owner = spawn('sleep', ['600'], { stdio: 'ignore' });
    const cp = await node('cp', { env: { [OWNER_PID_ENV]: String(owner.pid) } });
    await initCluster(cp.kubeadm, await freePort());
    const pid = Number(await readFile(join(cp.rootfs, 'var/run/kubeadm-standin/apiserver.pid'), 'utf8'));
    assert.ok(isRunning(pid), 'the daemon serves after kubeadm init exited');
    owner.kill('SIGKILL');
    await once(owner, 'exit');
    const deadline = Date.now() + 10_000;
    while (isRunning(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(isRunning(pid), false, `daemon ${pid} still runs after its owner was SIGKILLed`);
  });

  it('a hanging kubeadm is killed at the timeout', async () => {
    const rootfs = join(work, 'hang');
    rootfses.push(rootfs);
    const log = recordingLog();
    await installComponents(
      [{ url: component.url, sha256: component.sha256, installPath: '/usr/bin/kubeadm', extract: false }],
      { rootfs, log },
    );
    const kubeadm = createKubeadm({
      binary: join(rootfs, 'usr/bin/kubeadm'),
      rootfs,
      log,
      timeoutMs: 1_500,
      env: { KUBEADM_STANDIN_HANG_PHASE: 'preflight' },
    });
    const err = await initCluster(kubeadm, await freePort()).catch((e: unknown) => e);
    assert.ok(err instanceof KubeadmError, String(err));
    assert.equal(err.timedOut, true);
  });
});
