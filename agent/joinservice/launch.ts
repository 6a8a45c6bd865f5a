import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Attester, createEphemeralIdentity, createPeerVerifier } from '../../attestation/atls/index.js';
import type { Trust } from '../../attestation/ek-chain.js';
import type { SignedInventory } from '../../common/contracts/owner.js';
import { deriveMeasurementsMacKey } from '../../common/keys.js';
import { advertiseJoinService } from '../discovery/index.js';
import { caCertHash } from '../kubeadm/ca-hash.js';
import { readControlPlaneCertificates } from '../kubeadm/control-plane-certs.js';
import type { Kubeadm } from '../kubeadm/driver.js';
import { credentialsFromKubeconfig, KubeApi } from '../kubernetes/api-client.js';
import { ApiBootstrapTokens, type BootstrapTokens } from '../kubernetes/bootstrap-token.js';
import { CsrApprover } from '../kubernetes/csr-approver.js';
import { statePath } from '../lifecycle/layout.js';
import type { Logger } from '../log/index.js';
import type { ClusterSecrets, ClusterSecretsStore } from '../state/cluster-secrets.js';
import { AdmissionRegistry } from './admissions.js';
import { AuditLog } from './audit-log.js';
import type { UnlistedPolicy } from './authorization.js';
import { inventorySource } from './inventory.js';
import { JoinService } from './join-service.js';
import type { CallLimits } from './limits.js';
import { admissionMeasurements, openMeasurementsSource } from './measurements-source.js';

export interface JoinServiceSetup {
  log: Logger;
  trust: Trust;
  attester: Attester;
  /** The admin kubeconfig kubeadm wrote on this control plane: join tokens are made through the API with it. */
  kubeadm: Pick<Kubeadm, 'adminKubeconfig'>;
  /** Replaces the API-backed bootstrap tokens (tests). */
  tokens?: BootstrapTokens;
  secretsStore: ClusterSecretsStore;
  stateDir: string;
  /** Root of the filesystem kubeadm wrote the cluster CA to. */
  rootfs: string;
  variant: string;
  listenAddress: string;
  port: number;
  burstPerPeer: number;
  /** mDNS name to advertise the JoinService under; none when mDNS is off. */
  mdnsName?: string;
  /**
   * The operator's signed inventory as this node's metadata carries it now (read anew for every join, so nodes the
   * operator adds later are admitted by it); verified here with the cluster's owner key.
   */
  inventory?: () => Promise<SignedInventory | undefined>;
  /** What nodes the inventory does not list get (default: worker, named after the EK). */
  unlisted?: UnlistedPolicy;
  /** The process's call limits, shared with the node's own port (both reach the same TPM). */
  callLimits?: CallLimits;
}

export interface RunningJoinService {
  port: number;
  close(): Promise<void>;
}

/**
 * Starts a control plane's JoinService: persists the cluster secrets and measurements it admits nodes against
 * (the measurements file is watched for upgrades), pins joiners to the cluster CA kubeadm made, and makes their
 * bootstrap tokens through the API with kubeadm's admin kubeconfig.
 */
export async function launchJoinService(
  setup: JoinServiceSetup,
  secrets: ClusterSecrets,
): Promise<RunningJoinService> {
  const { log } = setup;
  await setup.secretsStore.save(secrets);
  const measurementsPath = statePath(setup.stateDir, 'measurements');
  // The measurements came over the attested init channel (or a control-plane ticket): authenticated here with the
  // cluster's MAC, so a later replacement counts only when whoever wrote it holds the master secret too.
  const macKey = deriveMeasurementsMacKey(secrets.masterSecret);
  const measurements = await openMeasurementsSource({
    stateDir: setup.stateDir,
    shipped: secrets.measurements,
    makeVerifier: (text: string) =>
      createPeerVerifier({
        trust: setup.trust,
        // never weaker than the boot chain: an all-warnOnly file would admit any node
        measurements: admissionMeasurements(text, measurementsPath),
        variant: setup.variant,
      }),
    log,
    macKey,
  });
  const pki = join(setup.rootfs, 'etc/kubernetes/pki');
  const caPem = await readFile(join(pki, 'ca.crt'), 'utf8');
  const auditDir = statePath(setup.stateDir, 'joinService');
  let api: KubeApi | undefined;
  let tokens = setup.tokens;
  if (!tokens) {
    api = new KubeApi(
      credentialsFromKubeconfig((await setup.kubeadm.adminKubeconfig()).toString('utf8'), 'admin kubeconfig'),
    );
    tokens = new ApiBootstrapTokens(api);
  }
  const service = new JoinService({
    log: log.child({ component: 'join-service' }),
    identity: await createEphemeralIdentity(),
    attester: setup.attester,
    measurements,
    secrets,
    tokens,
    // read per control-plane ticket: what kubeadm holds now, never a copy kept since launch
    controlPlaneCertificates: () => readControlPlaneCertificates(pki),
    caCertHash: caCertHash(caPem),
    admissions: await AdmissionRegistry.open(auditDir),
    // What the log does to itself (a torn tail cut, a broken segment set aside) is said in the journal.
    audit: await AuditLog.open(auditDir, {
      notice: (level, message) => (level === 'warn' ? log.warn(message) : log.info(message)),
    }),
    clusterSecretsFile: () => setup.secretsStore.readFileSync(),
    inventory: inventorySource(setup.inventory, secrets.ownerSeed, log),
    ...(setup.unlisted ? { unlisted: setup.unlisted } : {}),
    limits: { burstPerPeer: setup.burstPerPeer },
    ...(setup.callLimits ? { callLimits: setup.callLimits } : {}),
  });
  const port = await service.listen(setup.listenAddress, setup.port);
  // The tokens record their node's name; this approves a joining kubelet's client certificate for that name only,
  // and deletes kubeadm's approve-any-name binding (on its first pass, started with the listener — a kubelet's CSR
  // comes minutes after its ticket, after the component download and kubeadm's discovery — and again now and then).
  // Started only once the service is up, so a launch that fails leaves no loop behind. Not with injected tokens
  // (tests): there is no API server to watch.
  const approver = api ? new CsrApprover(api, { log: log.child({ component: 'csr-approver' }) }) : undefined;
  approver?.start();
  const ad = setup.mdnsName ? advertiseJoinService({ name: setup.mdnsName, port }) : undefined;
  log.info('JoinService listening', { port });
  return {
    port,
    async close() {
      await ad?.stop();
      await service.close();
      await approver?.stop();
      api?.close();
    },
  };
}
