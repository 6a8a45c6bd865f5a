import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { stringify } from 'yaml';
import { configMap, createOrUpdate, createToken, targetFromKubeconfig, uploadCerts } from './admin.js';
import { settingsPath } from './apiserver.js';
import { apiRequest, expectOk, sleep } from './client.js';
import { type ClusterCfg, type InitCfg, type LoadedConfig, loadConfigFile, parseConfig } from './config.js';
import {
  clusterEndpoint,
  kubeletConfigYaml,
  type NodeIdentity,
  writeControlPlaneCerts,
  writeControlPlaneManifests,
  writeEtcdManifest,
  writeKubeconfigs,
  writeKubeletFiles,
} from './controlplane.js';
import { alive, logTail, startDaemon, stopDaemon } from './daemon.js';
import { formatDuration } from './duration.js';
import type { Parsed } from './flags.js';
import { writeFileAtomic, writeSecretFile } from './fsutil.js';
import { clusterInfoKubeconfig, kubeconfig } from './kubeconfig.js';
import { joinHostPort } from './net.js';
import { Rootfs } from './paths.js';
import { enterPhase, KubeadmError, PhaseError, runPhase, say } from './phases.js';
import { caCertHash, createLeaf, type KeyAlg, loadCertKey } from './pki.js';
import {
  type Check,
  dirAvailableCheck,
  fileAvailableCheck,
  fileContentCheck,
  IPV4_FORWARD,
  IPV6_FORWARD,
  kubeletVersionCheck,
  kubernetesVersionCheck,
  memCheck,
  minorOf,
  numCpuCheck,
  portOpenCheck,
  runChecks,
} from './preflight.js';
import { splitToken } from './tokens.js';
import { generateCertificateKey } from './uploadcerts.js';
import { standinVersion } from './version.js';

export const INIT_FLAGS = [
  'config',
  'skip-phases',
  'certificate-key',
  'ignore-preflight-errors',
  'kubeconfig',
];
export const INIT_BOOLS = ['upload-certs', 'skip-token-print', 'skip-certificate-key-print', 'dry-run'];

/** The forwarding checks kubeadm adds for each IP family the node's addresses and subnets use. */
export function forwardingChecks(rootfs: Rootfs, addresses: string[]): Check[] {
  const families = new Set(addresses.filter(Boolean).map((a) => (a.split('/')[0]!.includes(':') ? 6 : 4)));
  const checks: Check[] = [];
  if (families.has(4)) checks.push(fileContentCheck(rootfs, IPV4_FORWARD, '1'));
  if (families.has(6)) checks.push(fileContentCheck(rootfs, IPV6_FORWARD, '1'));
  return checks;
}

/** The control-plane checks of InitNodeChecks (also run for a control-plane join, isSecondaryControlPlane). */
export function controlPlaneChecks(rootfs: Rootfs, cluster: ClusterCfg, bindPort: number): Check[] {
  const checks = [
    numCpuCheck(),
    memCheck(),
    kubernetesVersionCheck(cluster.kubernetesVersion, standinVersion()),
    portOpenCheck(bindPort),
    portOpenCheck(10259), // kube-scheduler
    portOpenCheck(10257), // kube-controller-manager
    ...['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'etcd'].map((m) =>
      fileAvailableCheck(rootfs, `/etc/kubernetes/manifests/${m}.yaml`),
    ),
  ];
  if (!cluster.etcd?.external) {
    checks.push(
      portOpenCheck(2379),
      portOpenCheck(2380),
      dirAvailableCheck(rootfs, cluster.etcd?.local?.dataDir ?? '/var/lib/etcd'),
    );
  }
  return checks;
}

/** kubeadm init's preflight (InitNodeChecks with its common checks), honouring ignorePreflightErrors. */
async function preflight(rootfs: Rootfs, cluster: ClusterCfg, init: InitCfg, ignore: Set<string>) {
  say('[preflight] Running pre-flight checks');
  await runChecks(
    [
      ...controlPlaneChecks(rootfs, cluster, init.localAPIEndpoint.bindPort!),
      kubeletVersionCheck(rootfs, standinVersion(), cluster.kubernetesVersion),
      portOpenCheck(10250), // kubelet
      ...forwardingChecks(rootfs, [
        ...cluster.networking.serviceSubnet.split(','),
        ...(cluster.networking.podSubnet?.split(',') ?? []),
        init.localAPIEndpoint.advertiseAddress ?? '',
      ]),
    ],
    ignore,
  );
  say('[preflight] No images pulled: the kubeadm stand-in runs no container runtime');
}

export async function waitHealthy(
  target: { server: string; caPem: string },
  timeoutMs: number,
  pid: number | undefined,
  rootfs: Rootfs,
) {
  const start = Date.now();
  let last = '';
  while (Date.now() - start < timeoutMs) {
    if (pid !== undefined && !alive(pid)) {
      throw new Error(
        `the API server exited before becoming healthy; its log (${rootfs.logFile}):\n${logTail(rootfs)}`,
      );
    }
    try {
      const r = await apiRequest(target, 'GET', '/livez', undefined, 2000);
      if (r.status === 200) return Date.now() - start;
      last = `${r.status} ${r.text}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(100);
  }
  throw new Error(
    `API server is not healthy after ${formatDuration(timeoutMs)}: ${last}\ncould not initialize a Kubernetes cluster`,
  );
}

function loadInit(p: Parsed, rootfs: Rootfs): LoadedConfig {
  const cfg = p.values.get('config');
  if (!cfg) {
    // kubeadm init without --config: defaults (the stand-in's tests always pass a config).
    return parseConfig(`apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n`, 'init');
  }
  for (const f of ['certificate-key']) {
    if (p.values.has(f)) throw new KubeadmError(`can not mix '--config' with arguments [${f}]`);
  }
  return loadConfigFile(rootfs.configPath(cfg), 'init');
}

/** NormalizeKubernetesVersion's floor: refused at config load, before any phase (not a preflight check). */
function checkVersionFloor(cluster: ClusterCfg): void {
  const floor = minorOf(standinVersion()) - 1;
  if (minorOf(cluster.kubernetesVersion) < floor) {
    throw new KubeadmError(
      `this version of kubeadm only supports deploying clusters with the control plane version >= 1.${floor}.0. Current version: ${cluster.kubernetesVersion}`,
    );
  }
}

export async function initCommand(p: Parsed): Promise<void> {
  const rootfs = new Rootfs(p.values.get('rootfs'));
  if (p.bools.has('dry-run')) throw new KubeadmError('the kubeadm stand-in does not implement --dry-run');
  const loaded = loadInit(p, rootfs);
  const init = loaded.init!;
  const cluster = loaded.cluster!;
  checkVersionFloor(cluster);
  if (init.dryRun) throw new KubeadmError('the kubeadm stand-in does not implement dryRun');
  const skip = new Set(
    [...(p.values.get('skip-phases')?.split(',') ?? init.skipPhases ?? [])].filter(Boolean),
  );
  const ignore = new Set(
    [
      ...(p.values.get('ignore-preflight-errors')?.split(',') ?? []),
      ...(init.nodeRegistration.ignorePreflightErrors ?? []),
    ].map((s) => s.toLowerCase()),
  );
  const node: NodeIdentity = {
    name: init.nodeRegistration.name!,
    advertiseAddress: init.localAPIEndpoint.advertiseAddress!,
    bindPort: init.localAPIEndpoint.bindPort!,
  };
  const endpoint = clusterEndpoint(cluster, node);
  const local = `https://${joinHostPort(node.advertiseAddress, node.bindPort)}`;
  const sub = (name: string) => enterPhase(name);
  const apiTimeout = init.timeouts.kubernetesAPICall;
  let certKey = p.values.get('certificate-key') ?? init.certificateKey;
  let pid: number | undefined;

  say(`[init] Using Kubernetes version: ${cluster.kubernetesVersion}`);
  await runPhase('preflight', skip, () => preflight(rootfs, cluster, init, ignore));
  await runPhase('certs', skip, () => writeControlPlaneCerts(rootfs, cluster, node, sub));
  await runPhase('kubeconfig', skip, () =>
    writeKubeconfigs(
      rootfs,
      cluster,
      node,
      ['admin.conf', 'super-admin.conf', 'kubelet.conf', 'controller-manager.conf', 'scheduler.conf'],
      sub,
    ),
  );
  await runPhase('etcd', skip, () => {
    if (cluster.etcd?.external) return;
    say(`[etcd] Creating static Pod manifest for local etcd in "/etc/kubernetes/manifests"`);
    writeEtcdManifest(rootfs, cluster, node);
    mkdirSync(rootfs.p(cluster.etcd?.local?.dataDir ?? '/var/lib/etcd'), { recursive: true, mode: 0o700 });
  });
  await runPhase('control-plane', skip, async () => {
    writeControlPlaneManifests(rootfs, cluster, node);
    const pki = cluster.certificatesDir;
    writeSecretFile(
      settingsPath(rootfs),
      JSON.stringify({
        host: node.advertiseAddress,
        port: node.bindPort,
        certFile: rootfs.p(`${pki}/apiserver.crt`),
        keyFile: rootfs.p(`${pki}/apiserver.key`),
        caCertFile: rootfs.p(`${pki}/ca.crt`),
        caKeyFile: rootfs.p(`${pki}/ca.key`),
        certValidityMs: cluster.certificateValidityPeriod,
      }),
    );
    await stopDaemon(rootfs);
    pid = startDaemon(rootfs);
  });
  await runPhase('kubelet-start', skip, () => {
    writeKubeletFiles(
      rootfs,
      kubeletConfigYaml(cluster, loaded.kubelet),
      {
        'container-runtime-endpoint': init.nodeRegistration.criSocket!,
        'node-ip': node.advertiseAddress,
      },
      init.nodeRegistration.kubeletExtraArgs,
    );
    say('[kubelet-start] The kubeadm stand-in does not start a kubelet (none runs in the fast test tiers)');
  });
  const caPem = () => readFileSync(rootfs.p(`${cluster.certificatesDir}/ca.crt`), 'utf8');
  await runPhase('wait-control-plane', skip, async () => {
    say(
      '[wait-control-plane] The kubeadm stand-in runs its API server as a process, not as static Pods; no kubelet to check',
    );
    say(
      `[api-check] Waiting for a healthy API server. This can take up to ${formatDuration(init.timeouts.controlPlaneComponentHealthCheck)}`,
    );
    const took = await waitHealthy(
      { server: local, caPem: caPem() },
      init.timeouts.controlPlaneComponentHealthCheck,
      pid,
      rootfs,
    );
    say(`[api-check] The API server is healthy after ${formatDuration(took)}`);
  });
  // Init talks to its own API server with the admin credentials (super-admin.conf in real kubeadm).
  const admin = () => ({ ...targetFromKubeconfig(rootfs), server: local });
  await runPhase('upload-config', skip, async () => {
    say(
      '[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace',
    );
    const { kubernetesVersion, ...rest } = cluster;
    const clusterDoc = stringify({
      apiVersion: 'kubeadm.k8s.io/v1beta4',
      kind: 'ClusterConfiguration',
      kubernetesVersion,
      ...serializableCluster(rest),
    });
    await createOrUpdate(
      admin(),
      '/api/v1/namespaces/kube-system/configmaps',
      configMap('kube-system', 'kubeadm-config', { ClusterConfiguration: clusterDoc }),
      apiTimeout,
    );
    say(
      '[kubelet] Creating a ConfigMap "kubelet-config" in namespace kube-system with the configuration for the kubelets in the cluster',
    );
    await createOrUpdate(
      admin(),
      '/api/v1/namespaces/kube-system/configmaps',
      configMap('kube-system', 'kubelet-config', { kubelet: kubeletConfigYaml(cluster, loaded.kubelet) }),
      apiTimeout,
    );
  });
  await runPhase('upload-certs', skip, async () => {
    if (!p.bools.has('upload-certs')) {
      say('[upload-certs] Skipping phase. Please see --upload-certs');
      return;
    }
    certKey ??= generateCertificateKey();
    say('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace');
    await uploadCerts(rootfs, admin(), cluster.certificatesDir, certKey, apiTimeout);
    if (!p.bools.has('skip-certificate-key-print')) {
      say('[upload-certs] Using certificate key:');
      say(certKey);
    }
  });
  await runPhase('mark-control-plane', skip, async () => {
    say(
      `[mark-control-plane] Marking the node ${node.name} as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]`,
    );
    const taints = init.nodeRegistration.taints ?? [];
    say(
      `[mark-control-plane] Marking the node ${node.name} as control-plane by adding the taints [${taints.map((t) => `${t.key}${t.value ? `=${t.value}` : ''}:${t.effect}`).join(' ')}]`,
    );
    await expectOk(
      apiRequest(
        admin(),
        'PUT',
        `/api/v1/nodes/${node.name}`,
        nodeObject(node.name, true, taints),
        apiTimeout,
      ),
      'error marking control-plane',
    );
  });
  await runPhase('bootstrap-token', skip, async () => {
    const first = init.bootstrapTokens?.[0]?.token;
    if (first && !p.bools.has('skip-token-print')) say(`[bootstrap-token] Using token: ${first}`);
    say('[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap');
    say(
      "[bootstrap-token] The stand-in's API server grants bootstrap tokens, built in, what kubeadm's RBAC rules would (no RBAC objects are created)",
    );
    for (const t of init.bootstrapTokens ?? []) {
      const parts = splitToken(t.token!)!;
      await createToken(
        admin(),
        {
          ...parts,
          description: t.description,
          expires: t.expires ? new Date(t.expires) : t.ttl ? new Date(Date.now() + t.ttl) : undefined,
          usages: t.usages ?? [],
          groups: t.groups ?? [],
        },
        apiTimeout,
      ).catch(async (e: Error) => {
        // re-running init against a live API server: replace the token as kubeadm's UpdateOrCreateTokens does
        if (!/already exists/.test(e.message)) throw e;
      });
    }
    say('[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace');
    await createOrUpdate(
      admin(),
      '/api/v1/namespaces/kube-public/configmaps',
      configMap('kube-public', 'cluster-info', {
        kubeconfig: clusterInfoKubeconfig(`https://${endpoint}`, caPem()),
      }),
      apiTimeout,
    );
  });
  await runPhase('kubelet-finalize', skip, async () => {
    await enterPhase('kubelet-finalize/enable-client-cert-rotation');
    const kubeletConf = rootfs.p('/etc/kubernetes/kubelet.conf');
    if (!existsSync(kubeletConf)) return;
    say(
      '[kubelet-finalize] Updating "/etc/kubernetes/kubelet.conf" to point to a rotatable kubelet client certificate and key',
    );
    const ca = await loadCertKey(
      rootfs.p(`${cluster.certificatesDir}/ca.crt`),
      rootfs.p(`${cluster.certificatesDir}/ca.key`),
    );
    const leaf = await createLeaf(
      ca,
      {
        cn: `system:node:${node.name}`,
        org: ['system:nodes'],
        usage: 'client',
        validityMs: cluster.certificateValidityPeriod,
      },
      cluster.encryptionAlgorithm as KeyAlg,
    );
    writeKubeletClientCert(rootfs, leaf.certPem + leaf.pem);
    writeSecretFile(
      kubeletConf,
      kubeconfig(cluster.clusterName, `https://${endpoint}`, ca.certPem, {
        name: 'default-auth',
        clientCertFile: '/var/lib/kubelet/pki/kubelet-client-current.pem',
        clientKeyFile: '/var/lib/kubelet/pki/kubelet-client-current.pem',
      }),
    );
  });
  await runPhase('addon', skip, async () => {
    await enterPhase('addon/coredns');
    await enterPhase('addon/kube-proxy');
    say('[addons] The kubeadm stand-in deploys no add-ons (CoreDNS, kube-proxy): nothing would run them');
  });
  await runPhase('show-join-command', skip, () => {
    const hash = caCertHash(caPem());
    const token = p.bools.has('skip-token-print')
      ? '<value withheld>'
      : (init.bootstrapTokens?.[0]?.token ?? '<value withheld>');
    const join = `kubeadm join ${endpoint} --token ${token} \\\n\t--discovery-token-ca-cert-hash ${hash}`;
    say('\nYour Kubernetes control-plane has initialized successfully!\n');
    say('To start using your cluster, you need to run the following as a regular user:\n');
    say('  mkdir -p $HOME/.kube');
    say('  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config');
    say('  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n');
    say('Alternatively, if you are the root user, you can run:\n');
    say('  export KUBECONFIG=/etc/kubernetes/admin.conf\n');
    say('You should now deploy a pod network to the cluster.');
    say('Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:');
    say('  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n');
    if (cluster.controlPlaneEndpoint) {
      if (certKey && p.bools.has('upload-certs')) {
        say(
          'You can now join any number of the control-plane node running the following command on each as root:\n',
        );
        say(
          `  ${join.replace('\n\t', '\n\t')} \\\n\t--control-plane --certificate-key ${p.bools.has('skip-certificate-key-print') ? '<value withheld>' : certKey}\n`,
        );
        say('Please note that the certificate-key gives access to cluster sensitive data, keep it secret!');
        say('As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use');
        say('"kubeadm init phase upload-certs --upload-certs" to reload certs afterward.\n');
      } else {
        say('You can now join any number of control-plane nodes by copying certificate authorities');
        say('and service account keys on each node and then running the following as root:\n');
        say(`  ${join} \\\n\t--control-plane \n`);
      }
    }
    say('Then you can join any number of worker nodes by running the following on each as root:\n');
    say(`${join} `);
  });
}

function serializableCluster(c: Record<string, unknown>): Record<string, unknown> {
  const ms = (v: unknown) => (typeof v === 'number' ? formatDuration(v) : v);
  return {
    ...c,
    certificateValidityPeriod: ms(c.certificateValidityPeriod),
    caCertificateValidityPeriod: ms(c.caCertificateValidityPeriod),
  };
}

export function nodeObject(
  name: string,
  controlPlane: boolean,
  taints: { key?: string; value?: string; effect?: string }[],
) {
  const labels: Record<string, string> = { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux' };
  if (controlPlane) {
    labels['node-role.kubernetes.io/control-plane'] = '';
    labels['node.kubernetes.io/exclude-from-external-load-balancers'] = '';
  }
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels }, spec: { taints } };
}

export function writeKubeletClientCert(rootfs: Rootfs, pem: string): void {
  const dir = rootfs.p('/var/lib/kubelet/pki');
  const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const file = `kubelet-client-${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}-${stamp.slice(8, 14)}.pem`;
  writeSecretFile(`${dir}/${file}`, pem);
  rmSync(`${dir}/kubelet-client-current.pem`, { force: true });
  symlinkSync(file, `${dir}/kubelet-client-current.pem`);
}

export { PhaseError, writeFileAtomic };
