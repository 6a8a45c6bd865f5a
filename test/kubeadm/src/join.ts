import './reflect-shim.js';
import { existsSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { parse } from 'yaml';
import { targetFromKubeconfig } from './admin.js';
import { type ApiTarget, apiRequest, expectOk, sleep, statusMessage } from './client.js';
import { type ClusterCfg, type JoinCfg, KUBEADM_GV, loadConfigFile, parseConfig } from './config.js';
import {
  type NodeIdentity,
  writeControlPlaneCerts,
  writeControlPlaneManifests,
  writeEtcdManifest,
  writeKubeconfigs,
  writeKubeletFiles,
} from './controlplane.js';
import type { Parsed } from './flags.js';
import { writeFileAtomic, writeSecretFile } from './fsutil.js';
import { controlPlaneChecks, forwardingChecks, nodeObject, writeKubeletClientCert } from './init.js';
import { kubeconfig, parseKubeconfig } from './kubeconfig.js';
import { Rootfs } from './paths.js';
import { enterPhase, KubeadmError, runPhase, say, verbose } from './phases.js';
import { caCertHash, generateKey, pemOf } from './pki.js';
import { fileAvailableCheck, kubeletVersionCheck, portOpenCheck, runChecks } from './preflight.js';
import { splitToken, verifyDetached } from './tokens.js';
import { decryptBytes, SHARED_CERTS, secretKeyFor } from './uploadcerts.js';
import { standinVersion } from './version.js';

/** The host of "host:port" / "[v6]:port". */
function splitHost(endpoint: string): string {
  const m = /^\[([^\]]+)\]:\d+$/.exec(endpoint) ?? /^([^:]+):\d+$/.exec(endpoint);
  return m?.[1] ?? '';
}

export const JOIN_FLAGS = [
  'config',
  'token',
  'discovery-token',
  'tls-bootstrap-token',
  'discovery-token-ca-cert-hash',
  'certificate-key',
  'node-name',
  'apiserver-advertise-address',
  'apiserver-bind-port',
  'skip-phases',
  'ignore-preflight-errors',
  'cri-socket',
];
export const JOIN_BOOLS = ['control-plane', 'discovery-token-unsafe-skip-ca-verification', 'dry-run'];

const DISCOVERY_RETRY_MS = 1000;

/** Flags-only join ("kubeadm join host:port --token ... --discovery-token-ca-cert-hash ..."), turned into v1beta4. */
function joinFromFlags(p: Parsed): JoinCfg {
  const endpoint = p.positional[0];
  const token = p.values.get('discovery-token') ?? p.values.get('token');
  const doc: Record<string, unknown> = {
    apiVersion: KUBEADM_GV,
    kind: 'JoinConfiguration',
    discovery: {
      bootstrapToken: {
        apiServerEndpoint: endpoint,
        token,
        caCertHashes: p.values.get('discovery-token-ca-cert-hash')?.split(','),
        unsafeSkipCAVerification: p.bools.has('discovery-token-unsafe-skip-ca-verification') || undefined,
      },
      tlsBootstrapToken: p.values.get('tls-bootstrap-token') ?? p.values.get('token'),
    },
    nodeRegistration: { name: p.values.get('node-name'), criSocket: p.values.get('cri-socket') },
  };
  if (p.bools.has('control-plane')) {
    doc.controlPlane = {
      certificateKey: p.values.get('certificate-key'),
      localAPIEndpoint: {
        advertiseAddress: p.values.get('apiserver-advertise-address'),
        bindPort: p.values.has('apiserver-bind-port')
          ? Number(p.values.get('apiserver-bind-port'))
          : undefined,
      },
    };
  }
  return parseConfig(JSON.stringify(doc), 'join', 'flags').join!;
}

function loadJoin(p: Parsed, rootfs: Rootfs): JoinCfg {
  const cfg = p.values.get('config');
  if (!cfg) return joinFromFlags(p);
  const mixed = JOIN_FLAGS.filter(
    (f) => f !== 'config' && f !== 'skip-phases' && f !== 'ignore-preflight-errors' && p.values.has(f),
  );
  if (p.bools.has('control-plane')) mixed.push('control-plane');
  if (p.positional.length > 0 || mixed.length > 0) {
    throw new KubeadmError(
      `can not mix '--config' with arguments [${[...p.positional, ...mixed].join(' ')}]`,
    );
  }
  return loadConfigFile(rootfs.configPath(cfg), 'join').join!;
}

interface Discovered {
  server: string;
  caPem: string;
  clusterName: string;
}

/**
 * Token discovery as kubeadm does it: fetch cluster-info without trusting the server, verify the
 * detached JWS with the token, pin the CA's public key, then re-fetch over verified TLS.
 */
async function discover(cfg: JoinCfg, v: number): Promise<Discovered> {
  const bt = cfg.discovery.bootstrapToken!;
  const token = splitToken(bt.token!)!;
  const endpoint = `https://${bt.apiServerEndpoint}`;
  const timeout = cfg.timeouts.discovery;
  say(`[discovery] Trying to connect to API Server "${bt.apiServerEndpoint}"`);
  const deadline = Date.now() + timeout;
  let lastError = '';
  let cm: { data?: Record<string, string> } | undefined;
  while (true) {
    try {
      const r = await apiRequest(
        { server: endpoint },
        'GET',
        '/api/v1/namespaces/kube-public/configmaps/cluster-info',
        undefined,
        Math.max(1, Math.min(10_000, deadline - Date.now())),
      );
      if (r.status !== 200) {
        lastError = `failed to request the cluster-info ConfigMap: ${statusMessage(r)}`;
      } else {
        cm = r.body as { data?: Record<string, string> };
        if (cm.data?.[`jws-kubeconfig-${token.id}`]) break;
        lastError = `could not find a JWS signature in the cluster-info ConfigMap for token ID "${token.id}"`;
        verbose(
          v,
          1,
          `[discovery] The cluster-info ConfigMap does not yet contain a JWS signature for token ID "${token.id}", will try again`,
        );
      }
    } catch (e) {
      lastError = `failed to request the cluster-info ConfigMap: ${(e as Error).message}`;
      verbose(v, 1, `[discovery] ${lastError}`);
    }
    if (Date.now() + DISCOVERY_RETRY_MS > deadline) {
      throw new Error(`couldn't validate the identity of the API Server: ${lastError}`);
    }
    await sleep(DISCOVERY_RETRY_MS);
  }
  const kcText = cm.data?.kubeconfig;
  if (!kcText)
    throw new Error(
      `couldn't validate the identity of the API Server: there is no kubeconfig key in the cluster-info ConfigMap`,
    );
  if (!verifyDetached(cm.data![`jws-kubeconfig-${token.id}`]!, kcText, token.id, token.secret)) {
    throw new Error(
      "couldn't validate the identity of the API Server: failed to verify JWS signature of received cluster info object, can't trust this API Server",
    );
  }
  const kc = parseKubeconfig(parse(kcText), () => '');
  if (!bt.unsafeSkipCAVerification) {
    const got = caCertHash(kc.caPem);
    if (!(bt.caCertHashes ?? []).includes(got)) {
      throw new Error(
        `couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "${got}" are pinned`,
      );
    }
  }
  say(`[discovery] Requesting info from "${endpoint}" again to validate TLS against the pinned public key`);
  let secure: { data?: Record<string, string> };
  try {
    secure = (
      await expectOk(
        apiRequest(
          { server: endpoint, caPem: kc.caPem },
          'GET',
          '/api/v1/namespaces/kube-public/configmaps/cluster-info',
          undefined,
          10_000,
        ),
        'failed to request the cluster-info ConfigMap',
      )
    ).body as typeof secure;
  } catch (e) {
    throw new Error(`couldn't validate the identity of the API Server: ${(e as Error).message}`);
  }
  if (secure.data?.kubeconfig !== kcText) {
    throw new Error(
      "couldn't validate the identity of the API Server: cluster info from the secure connection does not match the insecure one",
    );
  }
  say(
    `[discovery] Cluster info signature and contents are valid and TLS certificate validates against pinned roots, will use API Server "${bt.apiServerEndpoint}"`,
  );
  return { server: kc.server, caPem: kc.caPem, clusterName: 'kubernetes' };
}

export async function joinCommand(p: Parsed, v: number): Promise<void> {
  const rootfs = new Rootfs(p.values.get('rootfs'));
  if (p.bools.has('dry-run')) throw new KubeadmError('the kubeadm stand-in does not implement --dry-run');
  const cfg = loadJoin(p, rootfs);
  if (cfg.dryRun) throw new KubeadmError('the kubeadm stand-in does not implement dryRun');
  if (cfg.discovery.file)
    throw new KubeadmError(
      'the kubeadm stand-in implements only bootstrap-token discovery (discovery.file is not supported)',
    );
  const skip = new Set(
    [...(p.values.get('skip-phases')?.split(',') ?? cfg.skipPhases ?? [])].filter(Boolean),
  );
  const ignore = new Set(
    [
      ...(p.values.get('ignore-preflight-errors')?.split(',') ?? []),
      ...(cfg.nodeRegistration.ignorePreflightErrors ?? []),
    ].map((s) => s.toLowerCase()),
  );
  const cp = cfg.controlPlane;
  const node: NodeIdentity = {
    name: cfg.nodeRegistration.name!,
    advertiseAddress: cp?.localAPIEndpoint.advertiseAddress ?? '',
    bindPort: cp?.localAPIEndpoint.bindPort ?? 6443,
  };
  const apiTimeout = cfg.timeouts.kubernetesAPICall;
  let disc: Discovered | undefined;
  let cluster: ClusterCfg | undefined;
  let bootstrap: ApiTarget | undefined;

  await runPhase('preflight', skip, async () => {
    say('[preflight] Running pre-flight checks');
    // JoinNodeChecks: kubelet files not yet there, the common checks (kubelet, its port), the CA file
    // for a worker, and forwarding for the family of the API server endpoint.
    const endpointHost = splitHost(cfg.discovery.bootstrapToken?.apiServerEndpoint ?? '');
    await runChecks(
      [
        fileAvailableCheck(rootfs, '/etc/kubernetes/kubelet.conf'),
        fileAvailableCheck(rootfs, '/etc/kubernetes/bootstrap-kubelet.conf'),
        kubeletVersionCheck(rootfs, standinVersion()),
        portOpenCheck(10250),
        ...(cp ? [] : [fileAvailableCheck(rootfs, cfg.caCertPath)]),
        ...(isIP(endpointHost) ? forwardingChecks(rootfs, [endpointHost]) : []),
      ],
      ignore,
    );
    await enterPhase('discovery');
    disc = await discover(cfg, v);
    bootstrap = { server: disc.server, caPem: disc.caPem, token: cfg.discovery.tlsBootstrapToken };
    say(
      '[preflight] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...',
    );
    say("[preflight] Use 'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.");
    const r = await expectOk(
      apiRequest(
        bootstrap,
        'GET',
        '/api/v1/namespaces/kube-system/configmaps/kubeadm-config',
        undefined,
        apiTimeout,
      ),
      'unable to fetch the kubeadm-config ConfigMap',
    );
    const text = (r.body as { data?: Record<string, string> }).data?.ClusterConfiguration ?? '';
    cluster = parseConfig(text, 'init', 'kubeadm-config ConfigMap').cluster!;
    disc.clusterName = cluster.clusterName;
    if (cp) {
      if (!cluster.controlPlaneEndpoint) {
        throw new Error(
          "unable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address\n\nPlease ensure that:\n* The cluster has a stable controlPlaneEndpoint address.",
        );
      }
      // checkIfReadyForAdditionalControlPlane: without a certificate key the shared certificates must be on disk.
      if (!cp.certificateKey) {
        const missing = SHARED_CERTS.filter((f) => !existsSync(rootfs.p(`${cluster!.certificatesDir}/${f}`)));
        if (missing.length > 0) {
          throw new Error(
            `One or more conditions for hosting a new control plane instance is not satisfied.\n\n[${missing
              .map((f) => `couldn't load ${cluster!.certificatesDir}/${f}: no such file or directory`)
              .join(
                ', ',
              )}]\n\nPlease ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n* The certificates that must be shared among control plane instances are provided.`,
          );
        }
      }
      say('[preflight] Running pre-flight checks before initializing the new control plane instance');
      await runChecks(controlPlaneChecks(rootfs, cluster, node.bindPort), ignore);
    }
  });
  if (!disc || !cluster || !bootstrap)
    throw new KubeadmError('error execution phase preflight: discovery was skipped, nothing to join');
  const c = cluster;
  const d = disc;
  const bt = bootstrap;

  if (cp) {
    await runPhase('control-plane-prepare', skip, async () => {
      // A skipped sub-phase does not run at all (workflow.Runner): Sextant's control-plane joins skip it.
      if (!skip.has('control-plane-prepare/download-certs')) {
        await enterPhase('control-plane-prepare/download-certs');
        if (!cp.certificateKey) {
          say(
            '[download-certs] Skipping certs download (no certificate key given); expecting the shared certificates on disk',
          );
        } else {
          say(
            '[download-certs] Downloading the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace',
          );
          const r = await apiRequest(
            bt,
            'GET',
            '/api/v1/namespaces/kube-system/secrets/kubeadm-certs',
            undefined,
            apiTimeout,
          );
          if (r.status === 404) {
            throw new Error(
              'error downloading certs: error downloading the secret: Secret "kubeadm-certs" was not found in the "kube-system" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one',
            );
          }
          if (r.status !== 200)
            throw new Error(`error downloading certs: error downloading the secret: ${statusMessage(r)}`);
          const data = (r.body as { data?: Record<string, string> }).data ?? {};
          for (const f of SHARED_CERTS) {
            const blob = data[secretKeyFor(f)];
            if (!blob) continue;
            let plain: Buffer;
            try {
              plain = decryptBytes(Buffer.from(blob, 'base64'), cp.certificateKey);
            } catch (e) {
              throw new Error(
                `error downloading certs: error decoding secret data with provided key: ${(e as Error).message}`,
              );
            }
            const dest = rootfs.p(`${c.certificatesDir}/${f}`);
            if (f.endsWith('.key')) writeSecretFile(dest, plain);
            else writeFileAtomic(dest, plain);
          }
          say(`[download-certs] Saving the certificates to the folder: "${c.certificatesDir}"`);
        }
      }
      await enterPhase('control-plane-prepare/certs');
      await writeControlPlaneCerts(rootfs, c, node, (s) => enterPhase(s));
      await enterPhase('control-plane-prepare/kubeconfig');
      await writeKubeconfigs(
        rootfs,
        c,
        node,
        ['admin.conf', 'controller-manager.conf', 'scheduler.conf'],
        (s) => enterPhase(s),
      );
      await enterPhase('control-plane-prepare/control-plane');
      writeControlPlaneManifests(rootfs, c, node);
    });
  }

  await runPhase('kubelet-start', skip, async () => {
    say(
      '[kubelet-start] Downloading configuration for the kubelet from the "kubelet-config" ConfigMap in the kube-system namespace',
    );
    const r = await expectOk(
      apiRequest(
        bt,
        'GET',
        '/api/v1/namespaces/kube-system/configmaps/kubelet-config',
        undefined,
        apiTimeout,
      ),
      'unable to fetch the kubelet-config ConfigMap',
    );
    const kubeletYaml = (r.body as { data?: Record<string, string> }).data?.kubelet ?? '';
    writeFileAtomic(rootfs.p(cfg.caCertPath), d.caPem);
    writeSecretFile(
      rootfs.p('/etc/kubernetes/bootstrap-kubelet.conf'),
      kubeconfig(d.clusterName, d.server, d.caPem, {
        name: 'tls-bootstrap-token-user',
        token: cfg.discovery.tlsBootstrapToken,
      }),
    );
    const flags: Record<string, string> = { 'container-runtime-endpoint': cfg.nodeRegistration.criSocket! };
    if (node.advertiseAddress) flags['node-ip'] = node.advertiseAddress;
    writeKubeletFiles(rootfs, kubeletYaml, flags, cfg.nodeRegistration.kubeletExtraArgs);
    say('[kubelet-start] The kubeadm stand-in does not start a kubelet (none runs in the fast test tiers)');
    say(
      "[kubelet-start] The kubeadm stand-in performs the kubelet's TLS bootstrap itself: a CSR with the bootstrap token",
    );
    await enterPhase('kubelet-start/tls-bootstrap');
    // What the kubelet does with bootstrap-kubelet.conf: a CSR for system:node:<name>, signed by the cluster CA.
    const key = await generateKey('ECDSA-P256');
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: `O=system:nodes, CN=system:node:${node.name}`,
      keys: key.keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    const body = {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name: `node-csr-${Math.random().toString(36).slice(2, 12)}` },
      spec: {
        request: Buffer.from(pemOf(csr)).toString('base64'),
        signerName: 'kubernetes.io/kube-apiserver-client-kubelet',
        usages: ['digital signature', 'client auth'],
      },
    };
    const res = await apiRequest(
      bt,
      'POST',
      '/apis/certificates.k8s.io/v1/certificatesigningrequests',
      body,
      cfg.timeouts.tlsBootstrap,
    ).catch((e: Error) => {
      throw new Error(`error waiting for the kubelet to perform the TLS Bootstrap: ${e.message}`);
    });
    if (res.status !== 201 && res.status !== 200) {
      throw new Error(`error waiting for the kubelet to perform the TLS Bootstrap: ${statusMessage(res)}`);
    }
    const certPem = Buffer.from(
      (res.body as { status?: { certificate?: string } }).status?.certificate ?? '',
      'base64',
    ).toString();
    writeKubeletClientCert(rootfs, certPem + key.pem);
    writeSecretFile(
      rootfs.p('/etc/kubernetes/kubelet.conf'),
      kubeconfig(d.clusterName, d.server, d.caPem, {
        name: 'default-auth',
        clientCertFile: '/var/lib/kubelet/pki/kubelet-client-current.pem',
        clientKeyFile: '/var/lib/kubelet/pki/kubelet-client-current.pem',
      }),
    );
    rmSync(rootfs.p('/etc/kubernetes/bootstrap-kubelet.conf'), { force: true });
    // What the kubelet does next with its new credentials: register its Node.
    await expectOk(
      apiRequest(
        { ...targetFromKubeconfig(rootfs, '/etc/kubernetes/kubelet.conf'), server: d.server },
        'PUT',
        `/api/v1/nodes/${node.name}`,
        nodeObject(node.name, false, cfg.nodeRegistration.taints ?? []),
        apiTimeout,
      ),
      'registering the Node as the kubelet would',
    );
    say(`[kubelet-start] The kubeadm stand-in registered Node "${node.name}" as the kubelet would`);
  });

  if (cp) {
    await runPhase('control-plane-join', skip, async () => {
      await enterPhase('control-plane-join/etcd');
      if (!c.etcd?.external) {
        say(`[etcd] Creating static Pod manifest for "etcd"`);
        writeEtcdManifest(rootfs, c, node);
      }
      await enterPhase('control-plane-join/mark-control-plane');
      say(
        `[mark-control-plane] Marking the node ${node.name} as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]`,
      );
      await expectOk(
        apiRequest(
          targetFromKubeconfig(rootfs),
          'PUT',
          `/api/v1/nodes/${node.name}`,
          nodeObject(node.name, true, cfg.nodeRegistration.taints ?? []),
          apiTimeout,
        ),
        'error marking control-plane',
      );
    });
  }
  await runPhase('wait-control-plane', skip, () => {
    if (cp)
      say('[control-plane-check] Skipping: the stand-in runs no API server on joined control-plane nodes');
  });

  if (cp) {
    say('\nThis node has joined the cluster and a new control plane instance was created:\n');
    say('* Certificate signing request was sent to apiserver and approval was received.');
    say("* The kubelet's kubeconfig was written (no kubelet runs: kubeadm stand-in).");
    say('* Control plane label and taint were applied to the new node.');
    say(
      '* Static Pod manifests were written; no control-plane process or etcd member runs (kubeadm stand-in).\n',
    );
    say(
      'To start administering your cluster from this node, you need to run the following as a regular user:\n',
    );
    say('\tmkdir -p $HOME/.kube');
    say('\tsudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config');
    say('\tsudo chown $(id -u):$(id -g) $HOME/.kube/config\n');
    say("Run 'kubectl get nodes' to see this node join the cluster.\n");
  } else {
    say('\nThis node has joined the cluster:');
    say('* Certificate signing request was sent to apiserver and a response was received.');
    say("* The kubelet's kubeconfig was written (no kubelet runs: kubeadm stand-in).\n");
    say("Run 'kubectl get nodes' on the control-plane to see this node join the cluster.\n");
  }
}
