import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import type { ArgT, ClusterCfg } from './config.js';
import { writeFileAtomic, writeSecretFile } from './fsutil.js';
import { kubeconfig } from './kubeconfig.js';
import { joinHostPort, nthIp, parseCidr, splitHostPort } from './net.js';
import type { Rootfs } from './paths.js';
import { say } from './phases.js';
import {
  type CertKey,
  type CertSpec,
  createCA,
  createLeaf,
  generateKey,
  type KeyAlg,
  loadCertKey,
  publicKeyPem,
  splitSANs,
  writeCertKey,
} from './pki.js';

export interface NodeIdentity {
  name: string;
  advertiseAddress: string;
  bindPort: number;
}

/** The cluster endpoint as kubeadm computes it: controlPlaneEndpoint (port defaults to bindPort) or the local one. */
export function clusterEndpoint(c: ClusterCfg, n: NodeIdentity): string {
  if (c.controlPlaneEndpoint) {
    const { host, port } = splitHostPort(c.controlPlaneEndpoint);
    return joinHostPort(host, port ?? n.bindPort);
  }
  return joinHostPort(n.advertiseAddress, n.bindPort);
}

export function apiServerSANs(c: ClusterCfg, n: NodeIdentity): { dns: string[]; ips: string[] } {
  const svc = parseCidr(c.networking.serviceSubnet.split(',')[0]!)!;
  const sans = [
    n.name,
    'kubernetes',
    'kubernetes.default',
    'kubernetes.default.svc',
    `kubernetes.default.svc.${c.networking.dnsDomain}`,
    nthIp(svc, 1),
    n.advertiseAddress,
  ];
  if (c.controlPlaneEndpoint) sans.push(splitHostPort(c.controlPlaneEndpoint).host);
  sans.push(...(c.apiServer.certSANs ?? []));
  return splitSANs(sans);
}

async function ensureCA(
  dir: string,
  base: string,
  cn: string,
  c: ClusterCfg,
  label = base,
): Promise<CertKey> {
  const crt = `${dir}/${base}.crt`;
  const key = `${dir}/${base}.key`;
  if (existsSync(crt) && existsSync(key)) {
    say(`[certs] Using existing ${label} certificate authority`);
    return loadCertKey(crt, key);
  }
  if (existsSync(crt) !== existsSync(key)) {
    throw new Error(
      `failure loading ${label} certificate authority: ${existsSync(crt) ? key : crt} is missing`,
    );
  }
  say(`[certs] Generating "${label}" certificate and key`);
  const ca = await createCA(cn, c.encryptionAlgorithm as KeyAlg, c.caCertificateValidityPeriod);
  writeCertKey(dir, base, ca);
  return ca;
}

async function ensureLeaf(
  dir: string,
  base: string,
  ca: CertKey,
  spec: CertSpec,
  c: ClusterCfg,
  label = base,
) {
  if (existsSync(`${dir}/${base}.crt`) && existsSync(`${dir}/${base}.key`)) {
    say(`[certs] Using existing ${label} certificate and key on disk`);
    return;
  }
  say(`[certs] Generating "${label}" certificate and key`);
  if (spec.dns || spec.ips) {
    say(
      `[certs] ${label} serving cert is signed for DNS names [${(spec.dns ?? []).join(' ')}] and IPs [${(spec.ips ?? []).join(' ')}]`,
    );
  }
  writeCertKey(dir, base, await createLeaf(ca, spec, c.encryptionAlgorithm as KeyAlg));
}

/** The certs phase: CAs (reused when present, as kubeadm does) and every control-plane leaf certificate. */
export async function writeControlPlaneCerts(
  rootfs: Rootfs,
  c: ClusterCfg,
  n: NodeIdentity,
  sub: (p: string) => Promise<void>,
) {
  const dir = rootfs.p(c.certificatesDir);
  mkdirSync(`${dir}/etcd`, { recursive: true, mode: 0o755 });
  say(`[certs] Using certificateDir folder "${c.certificatesDir}"`);
  const v = c.certificateValidityPeriod;
  await sub('certs/ca');
  const ca = await ensureCA(dir, 'ca', 'kubernetes', c);
  await sub('certs/apiserver');
  await ensureLeaf(
    dir,
    'apiserver',
    ca,
    { cn: 'kube-apiserver', usage: 'server', validityMs: v, ...apiServerSANs(c, n) },
    c,
  );
  await sub('certs/apiserver-kubelet-client');
  await ensureLeaf(
    dir,
    'apiserver-kubelet-client',
    ca,
    { cn: 'kube-apiserver-kubelet-client', org: ['kubeadm:cluster-admins'], usage: 'client', validityMs: v },
    c,
  );
  await sub('certs/front-proxy-ca');
  const fp = await ensureCA(dir, 'front-proxy-ca', 'front-proxy-ca', c);
  await sub('certs/front-proxy-client');
  await ensureLeaf(
    dir,
    'front-proxy-client',
    fp,
    { cn: 'front-proxy-client', usage: 'client', validityMs: v },
    c,
  );
  if (!c.etcd?.external) {
    await sub('certs/etcd-ca');
    const eca = await ensureCA(`${dir}/etcd`, 'ca', 'etcd-ca', c, 'etcd/ca');
    const etcdSans = splitSANs([n.name, 'localhost', n.advertiseAddress, '127.0.0.1', '::1']);
    await sub('certs/etcd-server');
    const server = splitSANs([...etcdSans.dns, ...etcdSans.ips, ...(c.etcd?.local?.serverCertSANs ?? [])]);
    await ensureLeaf(
      `${dir}/etcd`,
      'server',
      eca,
      { cn: n.name, usage: 'both', validityMs: v, ...server },
      c,
      'etcd/server',
    );
    await sub('certs/etcd-peer');
    const peer = splitSANs([...etcdSans.dns, ...etcdSans.ips, ...(c.etcd?.local?.peerCertSANs ?? [])]);
    await ensureLeaf(
      `${dir}/etcd`,
      'peer',
      eca,
      { cn: n.name, usage: 'both', validityMs: v, ...peer },
      c,
      'etcd/peer',
    );
    await sub('certs/etcd-healthcheck-client');
    await ensureLeaf(
      `${dir}/etcd`,
      'healthcheck-client',
      eca,
      { cn: 'kube-etcd-healthcheck-client', usage: 'client', validityMs: v },
      c,
      'etcd/healthcheck-client',
    );
    await sub('certs/apiserver-etcd-client');
    await ensureLeaf(
      dir,
      'apiserver-etcd-client',
      eca,
      { cn: 'kube-apiserver-etcd-client', usage: 'client', validityMs: v },
      c,
    );
  }
  await sub('certs/sa');
  if (existsSync(`${dir}/sa.key`)) {
    say('[certs] Using the existing "sa" key');
  } else {
    say('[certs] Generating "sa" key and public key');
    const sa = await generateKey(c.encryptionAlgorithm as KeyAlg);
    writeSecretFile(`${dir}/sa.key`, sa.pem);
    writeFileAtomic(`${dir}/sa.pub`, publicKeyPem(sa.pem));
  }
  return ca;
}

export const KUBECONFIGS: Record<string, { cn: (n: NodeIdentity) => string; org: string[]; local: boolean }> =
  {
    'admin.conf': { cn: () => 'kubernetes-admin', org: ['kubeadm:cluster-admins'], local: false },
    'super-admin.conf': { cn: () => 'kubernetes-super-admin', org: ['system:masters'], local: false },
    'kubelet.conf': { cn: (n) => `system:node:${n.name}`, org: ['system:nodes'], local: false },
    'controller-manager.conf': { cn: () => 'system:kube-controller-manager', org: [], local: true },
    'scheduler.conf': { cn: () => 'system:kube-scheduler', org: [], local: true },
  };

export async function writeKubeconfigs(
  rootfs: Rootfs,
  c: ClusterCfg,
  n: NodeIdentity,
  files: string[],
  sub: (p: string) => Promise<void>,
): Promise<void> {
  const dir = rootfs.kubernetesDir;
  const ca = await loadCertKey(
    rootfs.p(`${c.certificatesDir}/ca.crt`),
    rootfs.p(`${c.certificatesDir}/ca.key`),
  );
  say('[kubeconfig] Using kubeconfig folder "/etc/kubernetes"');
  for (const f of files) {
    await sub(`kubeconfig/${f.replace('.conf', '')}`);
    const spec = KUBECONFIGS[f]!;
    const path = `${dir}/${f}`;
    if (existsSync(path)) {
      say(`[kubeconfig] Using existing kubeconfig file: "/etc/kubernetes/${f}"`);
      continue;
    }
    say(`[kubeconfig] Writing "${f}" kubeconfig file`);
    const leaf = await createLeaf(
      ca,
      { cn: spec.cn(n), org: spec.org, usage: 'client', validityMs: c.certificateValidityPeriod },
      c.encryptionAlgorithm as KeyAlg,
    );
    const server = `https://${spec.local ? joinHostPort(n.advertiseAddress, n.bindPort) : clusterEndpoint(c, n)}`;
    writeSecretFile(
      path,
      kubeconfig(c.clusterName, server, ca.certPem, {
        name: spec.cn(n),
        clientCertData: leaf.certPem,
        clientKeyData: leaf.pem,
      }),
    );
  }
}

function argsToFlags(defaults: Record<string, string>, extra: ArgT[] | undefined): string[] {
  const m = new Map(Object.entries(defaults));
  for (const a of extra ?? []) m.set(a.name!, a.value ?? '');
  return [...m.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `--${k}=${v}`);
}

function pod(name: string, image: string, command: string[], hostPaths: Record<string, string>): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { labels: { component: name, tier: 'control-plane' }, name, namespace: 'kube-system' },
    spec: {
      containers: [
        {
          command,
          image,
          imagePullPolicy: 'IfNotPresent',
          name,
          volumeMounts: Object.keys(hostPaths).map((k) => ({
            mountPath: hostPaths[k],
            name: k,
            readOnly: k !== 'etcd-data',
          })),
        },
      ],
      hostNetwork: true,
      priority: 2000001000,
      priorityClassName: 'system-node-critical',
      volumes: Object.keys(hostPaths).map((k) => ({
        hostPath: { path: hostPaths[k], type: 'DirectoryOrCreate' },
        name: k,
      })),
    },
  });
}

export function writeEtcdManifest(rootfs: Rootfs, c: ClusterCfg, n: NodeIdentity): void {
  const pki = c.certificatesDir;
  const data = c.etcd?.local?.dataDir ?? '/var/lib/etcd';
  const cmd = [
    'etcd',
    ...argsToFlags(
      {
        'advertise-client-urls': `https://${joinHostPort(n.advertiseAddress, 2379)}`,
        'cert-file': `${pki}/etcd/server.crt`,
        'client-cert-auth': 'true',
        'data-dir': data,
        'initial-cluster': `${n.name}=https://${joinHostPort(n.advertiseAddress, 2380)}`,
        'key-file': `${pki}/etcd/server.key`,
        'listen-client-urls': `https://127.0.0.1:2379,https://${joinHostPort(n.advertiseAddress, 2379)}`,
        name: n.name,
        'peer-cert-file': `${pki}/etcd/peer.crt`,
        'peer-key-file': `${pki}/etcd/peer.key`,
        'trusted-ca-file': `${pki}/etcd/ca.crt`,
      },
      undefined,
    ),
  ];
  writeFileAtomic(
    rootfs.p('/etc/kubernetes/manifests/etcd.yaml'),
    pod('etcd', `${c.imageRepository}/etcd:3.5.15-0`, cmd, {
      'etcd-certs': `${pki}/etcd`,
      'etcd-data': data,
    }),
    0o600,
  );
}

export function writeControlPlaneManifests(
  rootfs: Rootfs,
  c: ClusterCfg,
  n: NodeIdentity,
  extra?: { extraArgs?: ArgT[] },
): void {
  const pki = c.certificatesDir;
  const img = (x: string) => `${c.imageRepository}/${x}:${c.kubernetesVersion}`;
  const mounts = { 'ca-certs': '/etc/ssl/certs', 'k8s-certs': pki };
  const apiserver = argsToFlags(
    {
      'advertise-address': n.advertiseAddress,
      'allow-privileged': 'true',
      'authorization-mode': 'Node,RBAC',
      'client-ca-file': `${pki}/ca.crt`,
      'enable-bootstrap-token-auth': 'true',
      'etcd-servers': 'https://127.0.0.1:2379',
      'kubelet-client-certificate': `${pki}/apiserver-kubelet-client.crt`,
      'kubelet-client-key': `${pki}/apiserver-kubelet-client.key`,
      'secure-port': String(n.bindPort),
      'service-account-issuer': `https://kubernetes.default.svc.${c.networking.dnsDomain}`,
      'service-account-key-file': `${pki}/sa.pub`,
      'service-account-signing-key-file': `${pki}/sa.key`,
      'service-cluster-ip-range': c.networking.serviceSubnet,
      'tls-cert-file': `${pki}/apiserver.crt`,
      'tls-private-key-file': `${pki}/apiserver.key`,
    },
    extra?.extraArgs ?? c.apiServer.extraArgs,
  );
  const cm = argsToFlags(
    {
      'cluster-name': c.clusterName,
      'cluster-signing-cert-file': `${pki}/ca.crt`,
      'cluster-signing-key-file': `${pki}/ca.key`,
      kubeconfig: '/etc/kubernetes/controller-manager.conf',
      'root-ca-file': `${pki}/ca.crt`,
      'service-account-private-key-file': `${pki}/sa.key`,
      ...(c.networking.podSubnet
        ? { 'allocate-node-cidrs': 'true', 'cluster-cidr': c.networking.podSubnet }
        : {}),
      'use-service-account-credentials': 'true',
    },
    c.controllerManager?.extraArgs,
  );
  const sched = argsToFlags(
    { kubeconfig: '/etc/kubernetes/scheduler.conf', 'leader-elect': 'true' },
    c.scheduler?.extraArgs,
  );
  const dir = '/etc/kubernetes/manifests';
  say(`[control-plane] Using manifest folder "${dir}"`);
  for (const [name, flags] of [
    ['kube-apiserver', apiserver],
    ['kube-controller-manager', cm],
    ['kube-scheduler', sched],
  ] as const) {
    say(`[control-plane] Creating static Pod manifest for "${name}"`);
    writeFileAtomic(rootfs.p(`${dir}/${name}.yaml`), pod(name, img(name), [name, ...flags], mounts), 0o600);
  }
}

/** The cluster-wide KubeletConfiguration: the user's document over kubeadm's defaults. */
export function kubeletConfigYaml(c: ClusterCfg, user: Record<string, unknown> | undefined): string {
  const svc = parseCidr(c.networking.serviceSubnet.split(',')[0]!)!;
  const base: Record<string, unknown> = {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    authentication: {
      anonymous: { enabled: false },
      webhook: { cacheTTL: '0s', enabled: true },
      x509: { clientCAFile: `${c.certificatesDir}/ca.crt` },
    },
    authorization: { mode: 'Webhook', webhook: { cacheAuthorizedTTL: '0s', cacheUnauthorizedTTL: '0s' } },
    cgroupDriver: 'systemd',
    clusterDNS: [nthIp(svc, 10)],
    clusterDomain: c.networking.dnsDomain,
    rotateCertificates: true,
    staticPodPath: '/etc/kubernetes/manifests',
  };
  return stringify({ ...base, ...(user ?? {}) });
}

export function writeKubeletFiles(
  rootfs: Rootfs,
  configYaml: string,
  flags: Record<string, string>,
  extra?: ArgT[],
): void {
  say(
    '[kubelet-start] Writing kubelet environment file with flags to file "/var/lib/kubelet/kubeadm-flags.env"',
  );
  const args = argsToFlags(flags, extra).join(' ');
  writeFileAtomic(rootfs.p('/var/lib/kubelet/kubeadm-flags.env'), `KUBELET_KUBEADM_ARGS="${args}"\n`);
  say('[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"');
  writeFileAtomic(rootfs.p('/var/lib/kubelet/config.yaml'), configYaml);
}

export function readPem(rootfs: Rootfs, p: string): string {
  return readFileSync(rootfs.p(p), 'utf8');
}
