// Runs `kubeadm init` through the agent's driver in its own process, so a test can SIGKILL this "agent".
//   run-kubeadm.ts <kubeadm binary>
import { createKubeadm } from '../../../agent/kubeadm/driver.js';
import { createLogger } from '../../../agent/log/index.js';

const kubeadm = createKubeadm({ binary: process.argv[2]!, log: createLogger({ sink: 'memory' }) });
await kubeadm.init('apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n');
