import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Attester, createEphemeralIdentity, createPeerVerifier } from '../../attestation/atls/index.js';
import type { Trust } from '../../attestation/ek-chain.js';
import { parseMeasurementsFile } from '../../attestation/measurements.js';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { advertiseJoinService } from '../discovery/index.js';
import { caCertHash } from '../kubeadm/ca-hash.js';
import type { Kubeadm } from '../kubeadm/driver.js';
import type { Logger } from '../log/index.js';
import type { ClusterSecrets, ClusterSecretsStore } from '../state/cluster-secrets.js';
import { AdmissionRegistry } from './admissions.js';
import { AuditLog } from './audit-log.js';
import { JoinService } from './join-service.js';
import { KubeletCertificateSigner } from './kubelet-certificate.js';
import { MeasurementsSource } from './measurements-source.js';

export interface JoinServiceSetup {
  log: Logger;
  trust: Trust;
  attester: Attester;
  kubeadm: Pick<Kubeadm, 'createToken' | 'uploadCerts'>;
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
}

export interface RunningJoinService {
  port: number;
  close(): Promise<void>;
}

/**
 * Starts a control plane's JoinService: persists the cluster secrets and measurements it admits nodes against
 * (the measurements file is watched for upgrades), signs kubelet certificates with the cluster CA kubeadm made.
 */
export async function launchJoinService(
  setup: JoinServiceSetup,
  secrets: ClusterSecrets,
): Promise<RunningJoinService> {
  const { log } = setup;
  await setup.secretsStore.save(secrets);
  const measurementsPath = join(setup.stateDir, 'measurements.json');
  await writeFileAtomic(measurementsPath, secrets.measurements);
  const makeVerifier = (text: string) =>
    createPeerVerifier({
      trust: setup.trust,
      measurements: parseMeasurementsFile(text, measurementsPath),
      variant: setup.variant,
    });
  const pki = join(setup.rootfs, 'etc/kubernetes/pki');
  const caPem = await readFile(join(pki, 'ca.crt'), 'utf8');
  const signer = await KubeletCertificateSigner.fromPem(caPem, await readFile(join(pki, 'ca.key'), 'utf8'));
  const auditDir = join(setup.stateDir, 'joinservice');
  const service = new JoinService({
    log: log.child({ component: 'join-service' }),
    identity: await createEphemeralIdentity(),
    attester: setup.attester,
    measurements: new MeasurementsSource(measurementsPath, secrets.measurements, makeVerifier, log),
    secrets,
    kubeadm: setup.kubeadm,
    signer,
    caCertHash: caCertHash(caPem),
    admissions: await AdmissionRegistry.open(auditDir),
    audit: await AuditLog.open(auditDir),
    clusterSecretsFile: () => setup.secretsStore.readFileSync(),
    limits: { burstPerPeer: setup.burstPerPeer },
  });
  const port = await service.listen(setup.listenAddress, setup.port);
  const ad = setup.mdnsName ? advertiseJoinService({ name: setup.mdnsName, port }) : undefined;
  log.info('JoinService listening', { port });
  return {
    port,
    async close() {
      await ad?.stop();
      await service.close();
    },
  };
}
