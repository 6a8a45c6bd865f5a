import { existsSync, readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { type ApiTarget, apiRequest, expectOk } from './client.js';
import { parseKubeconfig } from './kubeconfig.js';
import type { Rootfs } from './paths.js';
import { type BootstrapToken, tokenToSecret } from './tokens.js';
import { encryptBytes, SHARED_CERTS, secretKeyFor } from './uploadcerts.js';

/** The client kubeadm builds from a kubeconfig file (default /etc/kubernetes/admin.conf). */
export function targetFromKubeconfig(rootfs: Rootfs, path = '/etc/kubernetes/admin.conf'): ApiTarget {
  const host = rootfs.p(path);
  if (!existsSync(host)) {
    throw new Error(`failed to load admin kubeconfig: open ${path}: no such file or directory`);
  }
  const kc = parseKubeconfig(parse(readFileSync(host, 'utf8')), (f) => readFileSync(rootfs.p(f), 'utf8'));
  return { server: kc.server, caPem: kc.caPem, certPem: kc.certPem, keyPem: kc.keyPem, token: kc.token };
}

/** Create, or replace when it exists: what kubeadm's apiclient.CreateOrUpdate* helpers do. */
export async function createOrUpdate(
  t: ApiTarget,
  collection: string,
  obj: { metadata: { name: string } },
  timeoutMs: number,
) {
  const r = await apiRequest(t, 'POST', collection, obj, timeoutMs);
  if (r.status === 409) {
    return expectOk(
      apiRequest(t, 'PUT', `${collection}/${obj.metadata.name}`, obj, timeoutMs),
      `unable to update ${obj.metadata.name}`,
    );
  }
  if (r.status < 200 || r.status >= 300) {
    throw new Error(
      `unable to create ${collection.split('/').pop()} "${obj.metadata.name}": ${(r.body as { message?: string })?.message ?? r.text}`,
    );
  }
  return r;
}

export async function createToken(t: ApiTarget, token: BootstrapToken, timeoutMs: number): Promise<void> {
  const r = await apiRequest(
    t,
    'POST',
    '/api/v1/namespaces/kube-system/secrets',
    tokenToSecret(token),
    timeoutMs,
  );
  if (r.status === 409) throw new Error(`a token with id "${token.id}" already exists`);
  if (r.status < 200 || r.status >= 300) {
    throw new Error(
      `failed to create or update bootstrap token with name bootstrap-token-${token.id}: ${(r.body as { message?: string })?.message ?? r.text}`,
    );
  }
}

/**
 * upload-certs: encrypt the shared CA/SA/front-proxy/etcd keys with the certificate key into the
 * kubeadm-certs Secret, owned by a short-lived token so it disappears after the TTL (2h in kubeadm).
 */
export async function uploadCerts(
  rootfs: Rootfs,
  t: ApiTarget,
  certDir: string,
  key: string,
  timeoutMs: number,
) {
  const ttlMs = process.env.KUBEADM_STANDIN_CERTS_TTL_MS
    ? Number(process.env.KUBEADM_STANDIN_CERTS_TTL_MS)
    : 2 * 3_600_000;
  const idChars = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const rnd = (n: number) =>
    Array.from({ length: n }, () => idChars[Math.floor(Math.random() * 36)]).join('');
  const owner: BootstrapToken = {
    id: rnd(6),
    secret: rnd(16),
    description: 'Proxy for managing TTL for the kubeadm-certs secret',
    expires: new Date(Date.now() + ttlMs),
    usages: [],
    groups: [],
  };
  await createToken(t, owner, timeoutMs);
  const data: Record<string, string> = {};
  for (const f of SHARED_CERTS) {
    const p = rootfs.p(`${certDir}/${f}`);
    if (!existsSync(p)) continue; // external etcd: no etcd CA
    data[secretKeyFor(f)] = encryptBytes(readFileSync(p), key).toString('base64');
  }
  await createOrUpdate(
    t,
    '/api/v1/namespaces/kube-system/secrets',
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'kubeadm-certs',
        namespace: 'kube-system',
        ownerReferences: [
          {
            apiVersion: 'v1',
            kind: 'Secret',
            name: `bootstrap-token-${owner.id}`,
            blockOwnerDeletion: true,
            controller: true,
          },
        ],
      },
      type: 'Opaque',
      data,
    } as { metadata: { name: string } },
    timeoutMs,
  );
}

export function configMap(ns: string, name: string, data: Record<string, string>) {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns }, data };
}

export { stringify };
