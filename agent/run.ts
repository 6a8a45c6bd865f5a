import { readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { execa } from 'execa';
import {
  type Attester,
  attestationService,
  attestedServerCredentials,
  createEphemeralIdentity,
  createPeerVerifier,
  type EphemeralIdentity,
  openAttestedChannel,
} from '../attestation/atls/index.js';
import { createTrust, type Trust } from '../attestation/ek-chain.js';
import { createIssuer } from '../attestation/issuer.js';
import { parseMeasurementsFile } from '../attestation/measurements.js';
import { writeFileAtomic } from '../common/atomic-file.js';
import { deriveClusterId, deriveMeasurementSecret } from '../common/keys.js';
import { AttestationServiceService } from '../gen/proto/attestation.js';
import { InitServiceService } from '../gen/proto/init.js';
import { notify } from '../native/systemd/notify.js';
import { openTpm, type Tpm } from '../native/tpm/index.js';
import { decideBoot } from './boot/boot-decision.js';
import { installComponents } from './components/install.js';
import type { Component } from './components/spec.js';
import { type AgentConfig, loadAgentConfig } from './config/agent-config.js';
import {
  advertiseJoinService,
  discoverAll,
  type EndpointSource,
  mdnsSource,
  metadataSource,
  staticSource,
} from './discovery/index.js';
import { InitServer } from './initserver/init-server.js';
import { expectedClusterPcr, JoinClient, JoinStopped } from './joinclient/join-client.js';
import { createKubeletCsr } from './joinclient/kubelet-csr.js';
import { AdmissionRegistry } from './joinservice/admissions.js';
import { AuditLog } from './joinservice/audit-log.js';
import { JoinService } from './joinservice/join-service.js';
import { KubeletCertificateSigner } from './joinservice/kubelet-certificate.js';
import { MeasurementsSource } from './joinservice/measurements-source.js';
import { caCertHash } from './kubeadm/ca-hash.js';
import { initConfiguration, joinConfiguration } from './kubeadm/config.js';
import { createKubeadm, type Kubeadm } from './kubeadm/driver.js';
import { rewriteKubeconfigServer } from './kubeadm/kubeconfig.js';
import { createLogger, type Logger } from './log/index.js';
import { type InstanceMetadata, loadMetadata } from './metadata/instance-metadata.js';
import { CLUSTER_ID_PCR, NodeLock } from './nodelock/node-lock.js';
import { type ClusterSecrets, loadClusterSecrets, saveClusterSecrets } from './state/cluster-secrets.js';
import { NodeStateStore } from './state/node-state.js';

/**
 * PCRs a joining node expects a JoinService to share with it: the boot chain below PCR 15 as the image fixes it.
 * Left out: PCR 1 (host platform configuration: SMBIOS tables and boot variables carry each VM's identity) and
 * PCR 10 (IMA, a runtime log), which differ between two VMs of one image; the image's measurements leave them out or
 * mark them warnOnly for the same reason. Firmware code (0), option ROMs (2), the boot loader and UKI (4), Secure
 * Boot state (7) and the UKI's sections (11) must all match.
 */
const BOOT_PCRS = [0, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14];

/** Everything a running agent holds, so `stop()` can release it in order. */
interface Running {
  stop(): Promise<void>;
}

/** The agent's wiring, in the order a node lives it: boot → decide → (init | join | rejoin) → JoinService. */
export async function run(env: NodeJS.ProcessEnv = process.env, signal?: AbortSignal): Promise<Running> {
  const log = createLogger({ identifier: 'sextant-agent' });
  const config = await loadAgentConfig(env);
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  const tpm = await openTpm(config.tcti);
  const closers: (() => Promise<void>)[] = [() => tpm.close()];
  const stop = async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
  };
  try {
    const pcrs = await tpm.readPcrs();
    log.info(
      'measurements read',
      Object.fromEntries([...pcrs].map(([i, v]) => [`pcr${i}`, v.toString('hex')])),
    );
    const metadata = await loadMetadata(config.metadataUrl);
    const trust = createTrust({
      ekCaCertificates: await Promise.all(config.ekCaCertificates.map((p) => readFile(p, 'utf8'))),
    });
    const issuer = await createIssuer({ tpm, variant: config.variant, eventLogPath: config.eventLogPath });
    closers.push(() => issuer.close());
    const attester: Attester = {
      identity: async () => issuer.identity(),
      attest: (c, u) => issuer.attest(c, u),
    };
    const kubeadm = createKubeadm({
      binary: join(config.rootfs, config.kubeadmPath),
      rootfs: config.rootfs === '/' ? undefined : config.rootfs,
      log,
      timeoutMs: config.kubeadmTimeoutMs,
    });
    const ctx: Context = {
      config,
      log,
      tpm,
      metadata,
      trust,
      attester,
      kubeadm,
      lock: new NodeLock(tpm),
      closers,
    };
    const state = new NodeStateStore(config.stateDir);
    const action = decideBoot(
      await state.load(),
      pcrs.get(CLUSTER_ID_PCR)?.equals(Buffer.alloc(32)) ?? false,
    );
    log.info(`boot decision: ${action.kind}`, 'reason' in action ? { reason: action.reason } : {});
    switch (action.kind) {
      case 'reboot-required':
        throw new Error(`${action.reason}; reboot the node to reset its TPM state`);
      case 'reset':
        await kubeadm.reset().catch((err: Error) => log.warn(`kubeadm reset: ${err.message}`));
        await state.clear();
        log.info('stale bootstrap state removed; the node is initializable again');
        await startFresh(ctx, state, signal);
        break;
      case 'fresh':
        await startFresh(ctx, state, signal);
        break;
      case 'rejoin':
        await startRejoin(ctx, state, action.state, signal);
        break;
    }
    notify('READY=1');
    return { stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

interface Context {
  config: AgentConfig;
  log: Logger;
  tpm: Tpm;
  metadata: InstanceMetadata;
  trust: Trust;
  attester: Attester;
  kubeadm: Kubeadm;
  lock: NodeLock;
  closers: (() => Promise<void>)[];
}

async function startFresh(ctx: Context, state: NodeStateStore, signal?: AbortSignal): Promise<void> {
  const { config, log } = ctx;
  const identity = await createEphemeralIdentity();
  const initServer = new InitServer({
    log,
    metadata: ctx.metadata,
    lock: ctx.lock,
    state,
    apiServerPort: config.apiServerPort,
    checkMeasurements: (text) => void parseMeasurementsFile(text, 'measurements'),
    installComponents: (components) => install(ctx, components),
    runKubeadmInit: async (input) => {
      await ctx.kubeadm.init(initConfiguration(input), { uploadCerts: false });
      return ctx.kubeadm.adminKubeconfig();
    },
    rewriteKubeconfigServer,
    startJoinService: (secrets) => startJoinService(ctx, secrets),
    resetKubernetes: () => ctx.kubeadm.reset(),
  });
  const port = await serve(ctx, identity, initServer);
  log.info('init server listening', { port });

  const joinClient = newJoinClient(ctx, state);
  const abort = new AbortController();
  signal?.addEventListener('abort', () => abort.abort(), { once: true });
  ctx.closers.push(async () => abort.abort());
  joinClient.run(abort.signal).then(
    () => log.info('join client finished: node joined'),
    (err: unknown) => {
      if (err instanceof JoinStopped && err.reason !== 'reset-required') log.info(err.message);
      else log.error(`join client stopped: ${(err as Error).message}`);
    },
  );
}

async function startRejoin(
  ctx: Context,
  state: NodeStateStore,
  nodeState: NonNullable<Awaited<ReturnType<NodeStateStore['load']>>>,
  signal?: AbortSignal,
): Promise<void> {
  const secrets = nodeState.role === 'control-plane' ? await loadClusterSecrets(ctx.config.stateDir) : null;
  if (secrets) {
    // A control plane holds the cluster's secrets itself: it checks its own cluster ID, restores PCR 15 and
    // serves joins again, without asking anyone.
    const clusterId = deriveClusterId(deriveMeasurementSecret(secrets.masterSecret), secrets.measurementSalt);
    if (clusterId.toString('hex') !== nodeState.clusterId)
      throw new Error('cluster secrets do not match the node state');
    const pcr15 = (await ctx.tpm.readPcrs([CLUSTER_ID_PCR])).get(CLUSTER_ID_PCR)!;
    if (pcr15.equals(Buffer.alloc(32))) await ctx.lock.acquire('join', clusterId);
    else if (!pcr15.equals(expectedClusterPcr(clusterId)))
      throw new Error('PCR 15 shows another cluster; reboot required');
    else ctx.lock.markTaken('join');
    await startJoinService(ctx, secrets);
    await startKubelet(ctx);
    ctx.log.info('control plane resumed', { clusterId: nodeState.clusterId });
    return;
  }
  const client = newJoinClient(ctx, state);
  const abort = new AbortController();
  signal?.addEventListener('abort', () => abort.abort(), { once: true });
  ctx.closers.push(async () => abort.abort());
  await client.rejoin(nodeState, abort.signal);
  const port = await serve(ctx, await createEphemeralIdentity());
  ctx.log.info('attestation service listening', { port });
}

function newJoinClient(ctx: Context, state: NodeStateStore): JoinClient {
  const { config, log, metadata } = ctx;
  const sources: EndpointSource[] = [metadataSource(async () => metadata)];
  if (config.staticJoinEndpoints.length > 0) sources.push(staticSource(config.staticJoinEndpoints));
  if (config.mdns) sources.push(mdnsSource());
  return new JoinClient({
    log,
    metadata,
    lock: ctx.lock,
    state,
    rootfs: config.rootfs,
    apiServerPort: config.apiServerPort,
    attester: ctx.attester,
    serverVerifier: async () =>
      createPeerVerifier({ trust: ctx.trust, measurements: {}, variant: ctx.config.variant }),
    ownBootPcrs: () => ctx.tpm.readPcrs(BOOT_PCRS),
    openChannel: (endpoint, verifier) => openAttestedChannel(endpoint, { verifier }),
    discover: (signal) => discoverAll(sources, log, signal),
    readPcr: async (index) => (await ctx.tpm.readPcrs([index])).get(index)!,
    createKubeletCsr,
    installComponents: (components) => install(ctx, components),
    runKubeadmJoin: (input) =>
      ctx.kubeadm.join(
        joinConfiguration({
          nodeName: input.nodeName,
          apiServerEndpoint: input.apiServerEndpoint,
          token: input.token,
          caCertHashes: [input.caCertHash],
          ...(input.controlPlane
            ? {
                controlPlane: {
                  advertiseAddress: input.advertiseAddress,
                  bindPort: input.bindPort,
                  certificateKey: input.certificateKey,
                },
              }
            : {}),
        }),
      ),
    resetKubernetes: () => ctx.kubeadm.reset(),
    startKubelet: () => startKubelet(ctx),
    onControlPlaneJoined: async (file) => {
      await writeFileAtomic(join(config.stateDir, 'cluster-secrets.json'), file, { mode: 0o600 });
      const secrets = await loadClusterSecrets(config.stateDir);
      if (!secrets) throw new Error('cluster secrets vanished');
      await startJoinService(ctx, secrets);
    },
  });
}

function install(ctx: Context, components: Component[]): Promise<void> {
  return installComponents(components, {
    ...(ctx.config.rootfs === '/' ? {} : { rootfs: ctx.config.rootfs }),
    log: ctx.log,
  });
}

async function startKubelet(ctx: Context): Promise<void> {
  const [cmd, ...args] = ctx.config.kubeletStart;
  if (!cmd) return;
  await execa(cmd, args, { timeout: 60_000 });
}

async function startJoinService(ctx: Context, secrets: ClusterSecrets): Promise<void> {
  const { config, log } = ctx;
  await saveClusterSecrets(config.stateDir, secrets);
  const measurementsPath = join(config.stateDir, 'measurements.json');
  await writeFileAtomic(measurementsPath, secrets.measurements);
  const makeVerifier = (text: string) =>
    createPeerVerifier({
      trust: ctx.trust,
      measurements: parseMeasurementsFile(text, measurementsPath),
      variant: config.variant,
    });
  const pki = join(config.rootfs, 'etc/kubernetes/pki');
  const caPem = await readFile(join(pki, 'ca.crt'), 'utf8');
  const signer = await KubeletCertificateSigner.fromPem(caPem, await readFile(join(pki, 'ca.key'), 'utf8'));
  const auditDir = join(config.stateDir, 'joinservice');
  const service = new JoinService({
    log: log.child({ component: 'join-service' }),
    identity: await createEphemeralIdentity(),
    attester: ctx.attester,
    measurements: new MeasurementsSource(measurementsPath, secrets.measurements, makeVerifier, log),
    secrets,
    kubeadm: ctx.kubeadm,
    signer,
    caCertHash: caCertHash(caPem),
    admissions: await AdmissionRegistry.open(auditDir),
    audit: await AuditLog.open(auditDir),
    // Read on demand so a control-plane joiner always gets the current file.
    clusterSecretsFile: () => readFileSync(join(config.stateDir, 'cluster-secrets.json')),
    limits: { burstPerPeer: config.joinBurstPerPeer },
  });
  const port = await service.listen(config.listenAddress, config.joinServicePort);
  ctx.closers.push(() => service.close());
  if (config.mdns) {
    const ad = advertiseJoinService({ name: `${ctx.metadata.name}-join`, port });
    ctx.closers.push(() => ad.stop());
  }
  log.info('JoinService listening', { port });
}

/** The node's own gRPC server: attestation always (so an operator can verify any node), init only on a fresh node. */
async function serve(ctx: Context, identity: EphemeralIdentity, initServer?: InitServer): Promise<number> {
  const server = new grpc.Server();
  server.addService(AttestationServiceService, attestationService(ctx.attester, identity));
  if (initServer) server.addService(InitServiceService, initServer.service());
  const port = await bind(server, ctx.config.listenAddress, ctx.config.initPort, identity);
  ctx.closers.push(() => shutdown(server));
  return port;
}

function bind(
  server: grpc.Server,
  address: string,
  port: number,
  identity: EphemeralIdentity,
): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(`${address}:${port}`, attestedServerCredentials(identity), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
}

async function shutdown(server: grpc.Server): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, 2000);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
