#!/usr/bin/env node
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type Attester,
  createEphemeralIdentity,
  createPeerVerifier,
  openAttestedChannel,
} from '../attestation/atls/index.js';
import { createTrust, type Trust } from '../attestation/ek-chain.js';
import { createIssuer } from '../attestation/issuer.js';
import type { SignedInventory } from '../common/contracts/owner.js';
import { deriveMeasurementsMacKey } from '../common/keys.js';
import { credentialsFromKubeconfig, KubeApi } from '../common/kube-api.js';
import { notify } from '../native/systemd/notify.js';
import { openResilientTpm, type Tpm } from '../native/tpm/index.js';
import { installComponents } from './components/install.js';
import { type AgentConfig, loadAgentConfig } from './config/agent-config.js';
import { advertiseJoinService, discoverAll, joinServiceSources } from './discovery/index.js';
import { InitReplyStore } from './initserver/init-reply.js';
import { serveNode } from './initserver/node-server.js';
import { loadOrCreateDiskId } from './joinclient/disk-id.js';
import { JOIN_BACKOFF } from './joinclient/join-client.js';
import { AdmissionRegistry } from './joinservice/admissions.js';
import { AuditLog } from './joinservice/audit-log.js';
import { openInventorySource } from './joinservice/inventory.js';
import { JoinService } from './joinservice/join-service.js';
import { CallLimits } from './joinservice/limits.js';
import { admissionMeasurements, openClusterMeasurements } from './joinservice/measurements-source.js';
import { caCertHash } from './kubeadm/ca-hash.js';
import { readControlPlaneCertificates } from './kubeadm/control-plane-certs.js';
import { createKubeadm, type Kubeadm } from './kubeadm/driver.js';
import { createKubelet } from './kubeadm/kubelet.js';
import { ApiBootstrapTokens } from './kubernetes/bootstrap-token.js';
import { CsrApprover } from './kubernetes/csr-approver.js';
import { statePath } from './lifecycle/layout.js';
import { createLogger, type Logger } from './log/index.js';
import { loadMetadata } from './metadata/instance-metadata.js';
import { type Agent, type Platform, type Running, startAgent } from './start.js';
import { type ClusterSecrets, ClusterSecretsStore } from './state/cluster-secrets.js';
import { NodeStateStore } from './state/node-state.js';

/** Exit status when the TPM failed beyond what reopening its context can cure. */
export const EXIT_TPM_UNAVAILABLE = 70;
/** Exit status when this boot can no longer become a node (a join failed after PCR 15 was extended). */
export const EXIT_REBOOT_REQUIRED = 75;
/** What follows a failed start, said with every reason so the journal explains a reboot before it happens. */
const RESTART_NOTE =
  'exiting; systemd restarts the agent and reboots the node after 5 failed starts within 10 minutes';

/**
 * sextant-agent: the first service of a Sextant node. Runs until stopped; on a failure to start it exits
 * non-zero with a one-line reason (systemd restarts it, and the journal holds the line).
 */
export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(
      'usage: sextant-agent [--print-measurements]\n  config: $SEXTANT_AGENT_CONFIG (default /etc/sextant/agent.json)\n',
    );
    return 0;
  }
  if (argv.includes('--print-measurements')) {
    const { printMeasurements } = await import('./measurements-command.js');
    return printMeasurements();
  }
  const abort = new AbortController();
  let agent: Agent;
  try {
    agent = await run(process.env, abort.signal);
  } catch (err) {
    process.stderr.write(`sextant-agent: ${(err as Error).message}; ${RESTART_NOTE}\n`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve());
  });
  abort.abort();
  await agent.stop();
  return 0;
}

/** Opens the real node (config from the environment, TPM by TCTI) and starts the agent on it. */
async function run(env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<Agent> {
  const log = createLogger({ identifier: 'sextant-agent' });
  const config = await loadAgentConfig(env);
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  // A TPM I/O fault reopens the context; one that cannot be recovered ends the process, so systemd restarts
  // the agent (and, after a bounded number of failed starts, reboots the node: see sextant-agent.service).
  const tpm = await openResilientTpm(config.tcti, {
    notice: (level, message) => (level === 'error' ? log.error(message) : log.warn(message)),
    onFatal: (err) => {
      log.error(`${err.message}; ${RESTART_NOTE}`);
      process.exit(EXIT_TPM_UNAVAILABLE);
    },
  });
  const closing: (() => Promise<void>)[] = [() => tpm.close()];
  const close = async () => {
    for (const fn of closing.reverse()) await fn().catch(() => {});
  };
  try {
    const platform = await nodePlatform(config, log, tpm, closing);
    const agent = await startAgent(platform, signal);
    return {
      ...agent,
      async stop() {
        await agent.stop();
        await close();
      },
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The concrete platform of a node: what `startAgent` composes, chosen from the agent's config. */
async function nodePlatform(
  config: AgentConfig,
  log: Logger,
  tpm: Tpm,
  closing: (() => Promise<void>)[],
): Promise<Platform> {
  const trust = createTrust({
    ekCaCertificates: await Promise.all(config.ekCaCertificates.map((p) => readFile(p, 'utf8'))),
  });
  const issuer = await createIssuer({ tpm, variant: config.variant, eventLogPath: config.eventLogPath });
  closing.push(() => issuer.close());
  // The variant's verifiers all check the EK certificate chain: serving an identity without one would have every
  // init and join refused while the agent runs on, so the start fails instead (systemd retries it).
  if (issuer.identity().ekCertificate.length === 0) {
    throw new Error(
      `the TPM at "${config.tcti}" holds no EK certificate (NV index 0x01c00002 is not defined), which variant ${config.variant} requires: every verifier would refuse this node`,
    );
  }
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
  const secrets = new ClusterSecretsStore(config.stateDir);
  // One set of limits for every attested call of this process: both ports reach the same TPM.
  const callLimits = new CallLimits({ burstPerPeer: config.joinBurstPerPeer });
  const metadata = () => loadMetadata(config.metadataUrl);
  const sources = joinServiceSources({
    metadata,
    staticEndpoints: config.staticJoinEndpoints,
    mdns: config.mdns,
  });
  return {
    log,
    tpm,
    state: new NodeStateStore(config.stateDir),
    secrets,
    metadata,
    kubeadm,
    kubelet: createKubelet({ command: config.kubeletStart }),
    installComponents: (components) =>
      installComponents(components, { ...(config.rootfs === '/' ? {} : { rootfs: config.rootfs }), log }),
    attester,
    joinServiceVerifier: async () => createPeerVerifier({ trust, measurements: {}, variant: config.variant }),
    openChannel: (endpoint, verifier) => openAttestedChannel(endpoint, { verifier }),
    discover: (signal) => discoverAll(sources, log, signal),
    // the JoinService's own check, before the node lock: a weak set is refused before kubeadm runs
    checkMeasurements: (text) => void admissionMeasurements(text, 'measurements'),
    serveNode: (initServer) =>
      serveNode(
        { attester, address: config.listenAddress, port: config.initPort, guard: callLimits },
        initServer?.service(),
      ),
    startJoinService: (clusterSecrets, metadata) =>
      startJoinService(
        {
          log,
          trust,
          attester,
          kubeadm,
          secretsStore: secrets,
          callLimits,
          inventory: async () => (await loadMetadata(config.metadataUrl)).inventory,
          ...(config.mdns ? { mdnsName: `${metadata.name}-join` } : {}),
        },
        config,
        clusterSecrets,
      ),
    apiServerPort: config.apiServerPort,
    rootfs: config.rootfs,
    initReplies: new InitReplyStore(config.stateDir),
    stateDir: config.stateDir,
    diskId: () => loadOrCreateDiskId(config.stateDir),
    joinBackoff: JOIN_BACKOFF,
    rebootRequired: (reason) => {
      log.error(`${reason}; ${RESTART_NOTE}`);
      process.exit(EXIT_REBOOT_REQUIRED);
    },
    ready: () => notify('READY=1'),
  };
}

/** What a control plane's JoinService is made of, besides the agent's config. */
export interface JoinServiceParts {
  log: Logger;
  trust: Trust;
  attester: Attester;
  /** The admin kubeconfig kubeadm wrote on this control plane: join tokens are made through the API with it. */
  kubeadm: Pick<Kubeadm, 'adminKubeconfig'>;
  secretsStore: ClusterSecretsStore;
  /** The process's call limits, shared with the node's own port (both reach the same TPM). */
  callLimits: CallLimits;
  /** The operator's signed inventory as the metadata carries it now (read anew per join, verified per signature). */
  inventory: () => Promise<SignedInventory | undefined>;
  /** mDNS name to advertise the JoinService under; none when mDNS is off. */
  mdnsName?: string;
}

/**
 * Starts a control plane's JoinService: persists the cluster secrets, opens the measurements it admits nodes
 * against, pins joiners to the cluster CA kubeadm made, makes bootstrap tokens through the API with kubeadm's admin
 * kubeconfig and approves each joining kubelet's certificate for its token's node only.
 */
export async function startJoinService(
  parts: JoinServiceParts,
  config: Pick<
    AgentConfig,
    | 'stateDir'
    | 'rootfs'
    | 'variant'
    | 'listenAddress'
    | 'joinServicePort'
    | 'joinBurstPerPeer'
    | 'unlistedNodes'
  >,
  secrets: ClusterSecrets,
): Promise<Running & { port: number }> {
  const { log } = parts;
  await parts.secretsStore.save(secrets);
  const measurements = await openClusterMeasurements({
    stateDir: config.stateDir,
    masterSecret: secrets.masterSecret,
    shipped: secrets.measurements,
    trust: parts.trust,
    variant: config.variant,
    log,
  });
  const pki = join(config.rootfs, 'etc/kubernetes/pki');
  const caPem = await readFile(join(pki, 'ca.crt'), 'utf8');
  const auditDir = statePath(config.stateDir, 'joinService');
  const api = new KubeApi(
    credentialsFromKubeconfig((await parts.kubeadm.adminKubeconfig()).toString('utf8'), 'admin kubeconfig'),
  );
  const closing: (() => Promise<void> | void)[] = [() => api.close()];
  const close = async () => {
    for (const fn of closing.reverse()) await fn();
  };
  try {
    // the highest inventory serial taken is kept beside the admissions: an older signed copy is refused after a restart
    const inventory = await openInventorySource({
      stateDir: config.stateDir,
      read: parts.inventory,
      ownerSeed: secrets.ownerSeed,
      macKey: deriveMeasurementsMacKey(secrets.masterSecret),
      log,
      ...(secrets.inventorySerial !== undefined ? { atLeast: secrets.inventorySerial } : {}),
    });
    const service = new JoinService({
      log: log.child({ component: 'join-service' }),
      identity: await createEphemeralIdentity(),
      attester: parts.attester,
      measurements,
      secrets,
      tokens: new ApiBootstrapTokens(api),
      // read per control-plane ticket: what kubeadm holds now, never a copy kept since the start
      controlPlaneCertificates: () => readControlPlaneCertificates(pki),
      caCertHash: caCertHash(caPem),
      admissions: await AdmissionRegistry.open(auditDir),
      // what the log does to itself (a torn tail cut, a broken segment set aside) is said in the journal
      audit: await AuditLog.open(auditDir, {
        notice: (level, message) => (level === 'warn' ? log.warn(message) : log.info(message)),
      }),
      clusterSecretsFile: () => parts.secretsStore.readFileSync(),
      inventory,
      unlisted: config.unlistedNodes,
      limits: { burstPerPeer: config.joinBurstPerPeer },
      callLimits: parts.callLimits,
    });
    const port = await service.listen(config.listenAddress, config.joinServicePort);
    closing.push(() => service.close());
    // Started with the listener: a kubelet's CSR comes minutes after its ticket, and a start that failed earlier
    // leaves no loop behind.
    const approver = new CsrApprover(api, { log: log.child({ component: 'csr-approver' }) });
    approver.start();
    closing.push(() => approver.stop());
    const ad = parts.mdnsName ? advertiseJoinService({ name: parts.mdnsName, port }) : undefined;
    if (ad) closing.push(() => ad.stop());
    log.info('JoinService listening', { port });
    return { port, close };
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((code) => process.exit(code));
}
