import type { KubeadmTuning } from '../../common/contracts/kubeadm-tuning.js';
import { initConfiguration, joinConfiguration } from './config.js';
import type { InitConfigInput } from './config-input.js';
import type { Kubeadm } from './driver.js';

/** What `kubeadm join` needs for one node, from its join ticket and its own identity. */
export interface KubeadmJoinRequest {
  nodeName: string;
  advertiseAddress: string;
  apiServerEndpoint: string;
  /** Secret: the bootstrap token. */
  token: string;
  caCertHash: string;
  /** A control plane finds the shared certificates on disk (from its ticket): kubeadm downloads none. */
  controlPlane: boolean;
  bindPort: number;
  /** The platform's kubeadm tuning (instance metadata); absent, kubeadm's defaults. */
  tuning?: KubeadmTuning;
}

/** Renders kubeadm's InitConfiguration, runs `kubeadm init` and returns the admin kubeconfig it wrote. */
export async function kubeadmInit(
  kubeadm: Pick<Kubeadm, 'init' | 'adminKubeconfig'>,
  input: InitConfigInput,
): Promise<Buffer> {
  // Certificates are uploaded when a control plane asks to join (kubeadm's upload expires after two hours).
  await kubeadm.init(initConfiguration(input), { uploadCerts: false });
  return kubeadm.adminKubeconfig();
}

/** Renders kubeadm's JoinConfiguration (with a control-plane section for a control plane) and runs `kubeadm join`. */
export function kubeadmJoin(kubeadm: Pick<Kubeadm, 'join'>, req: KubeadmJoinRequest): Promise<void> {
  return kubeadm.join(
    joinConfiguration({
      nodeName: req.nodeName,
      nodeIp: req.advertiseAddress,
      apiServerEndpoint: req.apiServerEndpoint,
      token: req.token,
      caCertHashes: [req.caCertHash],
      ...(req.controlPlane
        ? { controlPlane: { advertiseAddress: req.advertiseAddress, bindPort: req.bindPort } }
        : {}),
      ...(req.tuning ? { tuning: req.tuning } : {}),
    }),
  );
}
