import { deriveClusterId, deriveMeasurementSecret } from '../../common/keys.js';
import type { Kubelet } from '../kubeadm/kubelet.js';
import type { Logger } from '../log/index.js';
import { ClusterPcrMismatchError, type NodeLock } from '../nodelock/node-lock.js';
import type { ClusterSecrets, ClusterSecretsStore } from '../state/cluster-secrets.js';
import type { NodeState } from '../state/node-state.js';

export interface ControlPlaneResumeDeps {
  log: Logger;
  secrets: Pick<ClusterSecretsStore, 'load'>;
  lock: Pick<NodeLock, 'resume'>;
  /** Persists what the JoinService needs and starts it. */
  startJoinService(secrets: ClusterSecrets): Promise<void>;
  kubelet: Kubelet;
}

/**
 * A bootstrapped control plane that holds the cluster's secrets comes back without asking anyone: it checks the
 * secrets name the cluster its state records, restores PCR 15, serves joins again and starts kubelet.
 * Resolves false when the node holds no cluster secrets (a worker, or a control plane that must rejoin through
 * another JoinService); throws, leaving the node as it was, when secrets, state and PCR 15 disagree.
 */
export async function resumeControlPlane(state: NodeState, deps: ControlPlaneResumeDeps): Promise<boolean> {
  if (state.role !== 'control-plane') return false;
  const secrets = await deps.secrets.load();
  if (!secrets) return false;
  const clusterId = deriveClusterId(deriveMeasurementSecret(secrets.masterSecret), secrets.measurementSalt);
  if (clusterId.toString('hex') !== state.clusterId) {
    throw new Error('cluster secrets do not match the node state');
  }
  try {
    await deps.lock.resume(clusterId);
  } catch (err) {
    if (err instanceof ClusterPcrMismatchError) throw new Error(`${err.message}; reboot required`);
    throw err;
  }
  await deps.startJoinService(secrets);
  await deps.kubelet.start();
  deps.log.info('control plane resumed', { clusterId: state.clusterId });
  return true;
}
