import { readFileSync } from 'node:fs';
import { createToken, targetFromKubeconfig, uploadCerts } from './admin.js';
import { apiRequest, expectOk } from './client.js';
import { generateTokenString, loadConfigFile } from './config.js';
import { formatDuration, humanDuration, parseDuration } from './duration.js';
import type { Parsed } from './flags.js';
import { Rootfs } from './paths.js';
import { KubeadmError, say } from './phases.js';
import { caCertHash } from './pki.js';
import { DEFAULT_GROUP, secretToToken, splitToken, TOKEN_SECRET_TYPE } from './tokens.js';
import { generateCertificateKey } from './uploadcerts.js';

export const TOKEN_FLAGS = [
  'ttl',
  'description',
  'usages',
  'groups',
  'kubeconfig',
  'config',
  'certificate-key',
  'output',
];
export const TOKEN_BOOLS = ['print-join-command'];
const API_TIMEOUT = 60_000;

export async function tokenCommand(sub: string | undefined, p: Parsed): Promise<void> {
  const rootfs = new Rootfs(p.values.get('rootfs'));
  const kubeconfigPath = p.values.get('kubeconfig') ?? '/etc/kubernetes/admin.conf';
  const target = () => targetFromKubeconfig(rootfs, kubeconfigPath);
  switch (sub) {
    case 'generate':
      say(generateTokenString());
      return;
    case 'create': {
      const given = p.positional[0];
      const token = given ?? generateTokenString();
      const parts = splitToken(token);
      if (!parts)
        throw new KubeadmError(
          `the bootstrap token "${given}" was not of the form "[a-z0-9]{6}.[a-z0-9]{16}"`,
        );
      let ttl: number;
      try {
        ttl = parseDuration(p.values.get('ttl') ?? '24h');
      } catch (e) {
        throw new KubeadmError(
          `invalid argument "${p.values.get('ttl')}" for "--ttl" flag: ${(e as Error).message}`,
        );
      }
      const usages = (p.values.get('usages') ?? 'signing,authentication').split(',').filter(Boolean);
      for (const u of usages) {
        if (u !== 'signing' && u !== 'authentication') {
          throw new KubeadmError(
            `invalid bootstrap token usage string: ${u}, valid usage options: authentication,signing`,
          );
        }
      }
      const groups = (p.values.get('groups') ?? DEFAULT_GROUP).split(',').filter(Boolean);
      await createToken(
        target(),
        {
          ...parts,
          description: p.values.get('description'),
          expires: ttl > 0 ? new Date(Date.now() + ttl) : undefined,
          usages,
          groups,
        },
        API_TIMEOUT,
      ).catch((e: Error) => {
        throw new KubeadmError(
          `failed to create or update bootstrap token with name bootstrap-token-${parts.id}: ${e.message}`,
        );
      });
      if (p.bools.has('print-join-command')) {
        const t = target();
        const caPem = t.caPem ?? readFileSync(rootfs.p('/etc/kubernetes/pki/ca.crt'), 'utf8');
        say(
          `kubeadm join ${new URL(t.server).host} --token ${token} --discovery-token-ca-cert-hash ${caCertHash(caPem)} `,
        );
      } else {
        say(token);
      }
      return;
    }
    case 'list': {
      const r = await expectOk(
        apiRequest(
          target(),
          'GET',
          `/api/v1/namespaces/kube-system/secrets?fieldSelector=${encodeURIComponent(`type=${TOKEN_SECRET_TYPE}`)}`,
          undefined,
          API_TIMEOUT,
        ),
        'failed to list bootstrap tokens',
      );
      const items = ((r.body as { items?: { data?: Record<string, string> }[] }).items ?? [])
        .map(secretToToken)
        .filter((t) => t !== undefined);
      if (p.values.get('output') === 'json') {
        for (const t of items) {
          say(
            JSON.stringify(
              {
                kind: 'BootstrapToken',
                apiVersion: 'output.kubeadm.k8s.io/v1alpha3',
                token: `${t.id}.${t.secret}`,
                description: t.description,
                expires: t.expires?.toISOString(),
                usages: t.usages,
                groups: t.groups,
              },
              null,
              4,
            ),
          );
        }
        return;
      }
      const rows = [['TOKEN', 'TTL', 'EXPIRES', 'USAGES', 'DESCRIPTION', 'EXTRA GROUPS']];
      for (const t of items) {
        rows.push([
          `${t.id}.${t.secret}`,
          t.expires ? humanDuration(t.expires.getTime() - Date.now()) : '<forever>',
          t.expires ? t.expires.toISOString().replace(/\.\d{3}Z$/, 'Z') : '<never>',
          t.usages.join(',') || '<none>',
          t.description ?? '<none>',
          t.groups.join(',') || '<none>',
        ]);
      }
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows)
        say(
          r
            .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3)))
            .join('')
            .trimEnd(),
        );
      return;
    }
    case 'delete': {
      if (p.positional.length === 0)
        throw new KubeadmError(
          'missing subcommand; "token delete" is missing token of form "[a-z0-9]{6}.[a-z0-9]{16}" or "[a-z0-9]{6}"',
        );
      for (const t of p.positional) {
        const id = splitToken(t)?.id ?? (/^[a-z0-9]{6}$/.test(t) ? t : undefined);
        if (!id)
          throw new KubeadmError(
            `given token didn't match pattern "[a-z0-9]{6}" or "[a-z0-9]{6}.[a-z0-9]{16}"`,
          );
        await expectOk(
          apiRequest(
            target(),
            'DELETE',
            `/api/v1/namespaces/kube-system/secrets/bootstrap-token-${id}`,
            undefined,
            API_TIMEOUT,
          ),
          `failed to delete bootstrap token "${id}"`,
        );
        say(`bootstrap token "${id}" deleted`);
      }
      return;
    }
    default:
      throw new KubeadmError(`unknown command "${sub ?? ''}" for "kubeadm token"`);
  }
}

/** `kubeadm init phase upload-certs --upload-certs [--certificate-key K] [--config F]`. */
export async function uploadCertsPhase(p: Parsed): Promise<void> {
  const rootfs = new Rootfs(p.values.get('rootfs'));
  if (!p.bools.has('upload-certs')) {
    say('[upload-certs] Skipping phase. Please see --upload-certs');
    return;
  }
  let certDir = '/etc/kubernetes/pki';
  let key = p.values.get('certificate-key');
  const cfg = p.values.get('config');
  if (cfg) {
    const loaded = loadConfigFile(rootfs.configPath(cfg), 'init');
    certDir = loaded.cluster!.certificatesDir;
    key ??= loaded.init!.certificateKey;
  }
  if (key !== undefined && !/^[0-9a-f]{64}$/.test(key)) {
    throw new KubeadmError(
      'error execution phase upload-certs: error uploading certs: the certificate key must be a hex encoded string of 32 bytes',
    );
  }
  key ??= generateCertificateKey();
  say('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace');
  try {
    await uploadCerts(
      rootfs,
      targetFromKubeconfig(rootfs, p.values.get('kubeconfig') ?? '/etc/kubernetes/admin.conf'),
      certDir,
      key,
      API_TIMEOUT,
    );
  } catch (e) {
    throw new KubeadmError(
      `error execution phase upload-certs: error uploading certs: ${(e as Error).message}`,
    );
  }
  say('[upload-certs] Using certificate key:');
  say(key);
}

export { formatDuration };
