import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { stopDaemon } from './daemon.js';
import type { Parsed } from './flags.js';
import { Rootfs } from './paths.js';
import { enterPhase, KubeadmError, say } from './phases.js';

export const RESET_FLAGS = [
  'cert-dir',
  'cri-socket',
  'skip-phases',
  'ignore-preflight-errors',
  'kubeconfig',
  'config',
];
export const RESET_BOOLS = ['force', 'cleanup-tmp-dir', 'dry-run'];

/** `kubeadm reset -f`: stop the control plane and remove what init/join wrote. */
export async function resetCommand(p: Parsed): Promise<void> {
  const rootfs = new Rootfs(p.values.get('rootfs'));
  if (!p.bools.has('force')) {
    throw new KubeadmError('the kubeadm stand-in cannot prompt; run "kubeadm reset" with -f/--force');
  }
  await enterPhase('preflight');
  say('[preflight] Running pre-flight checks');
  await enterPhase('remove-etcd-member');
  await enterPhase('cleanup-node');
  if (await stopDaemon(rootfs)) say("[reset] Stopped the kubeadm stand-in's API server process");
  say('[reset] No kubelet service to stop: the kubeadm stand-in starts none');
  const etcdData = etcdDataDir(rootfs);
  say(
    `[reset] Deleting contents of directories: [${[etcdData, '/etc/kubernetes/manifests', '/var/lib/kubelet', '/etc/kubernetes/pki'].join(' ')}]`,
  );
  const certDir = p.values.get('cert-dir') ?? '/etc/kubernetes/pki';
  for (const d of [
    etcdData,
    '/etc/kubernetes/manifests',
    '/var/lib/kubelet',
    certDir,
    '/etc/kubernetes/tmp',
  ]) {
    const host = rootfs.p(d);
    if (!existsSync(host)) continue;
    for (const e of readdirSync(host)) rmSync(`${host}/${e}`, { recursive: true, force: true });
  }
  const files = [
    'admin.conf',
    'super-admin.conf',
    'kubelet.conf',
    'bootstrap-kubelet.conf',
    'controller-manager.conf',
    'scheduler.conf',
  ];
  say(`[reset] Deleting files: [${files.map((f) => `/etc/kubernetes/${f}`).join(' ')}]`);
  for (const f of files) rmSync(rootfs.p(`/etc/kubernetes/${f}`), { force: true });
  rmSync(rootfs.stateDir, { recursive: true, force: true });
  rmSync(rootfs.runDir, { recursive: true, force: true });
  say('\nThe reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d\n');
  say('The reset process does not reset or clean up iptables rules or IPVS tables.');
  say('If you wish to reset iptables, you must do so manually by using the "iptables" command.\n');
  say(
    'The reset process does not clean your kubeconfig files and you must remove them manually.\nPlease, check the contents of the $HOME/.kube/config file.',
  );
}

function etcdDataDir(rootfs: Rootfs): string {
  const m = rootfs.p('/etc/kubernetes/manifests/etcd.yaml');
  if (existsSync(m)) {
    const d = /--data-dir=(\S+)/.exec(readFileSync(m, 'utf8'))?.[1];
    if (d) return d;
  }
  return '/var/lib/etcd';
}
