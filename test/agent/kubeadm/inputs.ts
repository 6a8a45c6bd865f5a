// The kubeadm config inputs the config tests start from: a valid init and join, each test changing the field it
// is about.
import type { InitConfigInput, JoinConfigInput } from '../../../agent/kubeadm/config-input.js';

export const TOKEN = 'abcdef.0123456789abcdef';
export const CERT_KEY = 'f'.repeat(64);
export const HASH = `sha256:${'0'.repeat(64)}`;

export const initInput: InitConfigInput = {
  nodeName: 'cp-0',
  advertiseAddress: '10.0.0.2',
  bindPort: 6443,
  clusterName: 'sextant',
  kubernetesVersion: 'v1.31.2',
  serviceCidr: '10.96.0.0/12',
  podCidr: '10.244.0.0/16',
  apiServerCertSans: ['10.0.0.2', 'api.sextant.example', '*.sextant.example', 'fd00::1'],
  controlPlaneEndpoint: '10.0.0.2:6443',
  bootstrapToken: TOKEN,
  certificateKey: CERT_KEY,
};

export const joinInput: JoinConfigInput = {
  nodeName: 'worker-1',
  nodeIp: '10.0.0.3',
  apiServerEndpoint: '10.0.0.2:6443',
  token: TOKEN,
  caCertHashes: [HASH],
};
