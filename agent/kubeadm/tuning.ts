import type { KubeadmTuning } from '../../common/contracts/kubeadm-tuning.js';
import type { KubeadmArg } from './config-input.js';

/** kubeadm v1beta4's `timeouts` (InitConfiguration and JoinConfiguration), as Go durations. */
export interface KubeadmTimeouts {
  controlPlaneComponentHealthCheck: string;
  kubeletHealthCheck: string;
  kubernetesAPICall: string;
  etcdAPICall: string;
  tlsBootstrap: string;
  discovery: string;
}

/** What a platform changes in kubeadm's configuration; what a profile leaves out stays kubeadm's default. */
export interface TuningProfile {
  timeouts?: Readonly<KubeadmTimeouts>;
  apiServerArgs: readonly KubeadmArg[];
  controllerManagerArgs: readonly KubeadmArg[];
  schedulerArgs: readonly KubeadmArg[];
}

/**
 * kubeadm's waits, sized for a control plane under QEMU's TCG (no KVM on these machines): a static kube-apiserver
 * measured 16 s to /readyz under TCG against 4 s natively, and a whole control plane starts its pods on two emulated
 * vCPUs at once; kubeadm's defaults (4 min for the control plane and the kubelet, 5 min for TLS bootstrap and
 * discovery) fail there. Roughly 3-4x the defaults; the agent's per-command timeout (driver.ts) stays above the sum
 * of what one command may wait.
 */
export const KUBEADM_TIMEOUTS: Readonly<KubeadmTimeouts> = {
  controlPlaneComponentHealthCheck: '15m0s',
  kubeletHealthCheck: '10m0s',
  kubernetesAPICall: '3m0s',
  etcdAPICall: '5m0s',
  tlsBootstrap: '15m0s',
  discovery: '15m0s',
};
/**
 * A control plane on two emulated vCPUs, sharing the host with its worker, answers slowly: the API server's etcd
 * health checks (2 s by default) then fail its /livez and /readyz, kubelet's liveness probe restarts it, and the
 * restart makes it slower still. Seen in the VM end to end on a loaded host ("[-]etcd failed" for minutes).
 */
export const TCG_API_SERVER_ARGS: readonly KubeadmArg[] = [
  { name: 'etcd-healthcheck-timeout', value: '30s' },
  { name: 'etcd-readycheck-timeout', value: '30s' },
];
/**
 * Leader election for the controller manager and the scheduler: the defaults (15 s lease, 10 s renew deadline)
 * make both lose their lease and restart whenever a TCG node stalls for seconds, as they did in the VM end to end.
 */
export const TCG_LEADER_ELECTION_ARGS: readonly KubeadmArg[] = [
  { name: 'leader-elect-lease-duration', value: '60s' },
  { name: 'leader-elect-renew-deadline', value: '45s' },
  { name: 'leader-elect-retry-period', value: '5s' },
];

export const TUNING_PROFILES: Readonly<Record<KubeadmTuning, TuningProfile>> = {
  default: { apiServerArgs: [], controllerManagerArgs: [], schedulerArgs: [] },
  'qemu-tcg': {
    timeouts: KUBEADM_TIMEOUTS,
    apiServerArgs: TCG_API_SERVER_ARGS,
    controllerManagerArgs: TCG_LEADER_ELECTION_ARGS,
    schedulerArgs: TCG_LEADER_ELECTION_ARGS,
  },
};

/** The named profile; no name is kubeadm's own defaults (a cloud node must not inherit an emulator's waits). */
export function tuningProfile(name: KubeadmTuning | undefined): TuningProfile {
  return TUNING_PROFILES[name ?? 'default'];
}
