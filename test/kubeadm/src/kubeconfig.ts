import { stringify } from 'yaml';

export interface KubeconfigUser {
  name: string;
  clientCertData?: string; // PEM
  clientKeyData?: string; // PEM
  clientCertFile?: string;
  clientKeyFile?: string;
  token?: string;
}

/** A kubeconfig laid out the way client-go's clientcmd writes it. */
export function kubeconfig(clusterName: string, server: string, caPem: string, user: KubeconfigUser): string {
  const ctx = `${user.name}@${clusterName}`;
  const u: Record<string, string> = {};
  if (user.clientCertData) u['client-certificate-data'] = Buffer.from(user.clientCertData).toString('base64');
  if (user.clientCertFile) u['client-certificate'] = user.clientCertFile;
  if (user.clientKeyData) u['client-key-data'] = Buffer.from(user.clientKeyData).toString('base64');
  if (user.clientKeyFile) u['client-key'] = user.clientKeyFile;
  if (user.token) u.token = user.token;
  return stringify({
    apiVersion: 'v1',
    clusters: [
      {
        cluster: { 'certificate-authority-data': Buffer.from(caPem).toString('base64'), server },
        name: clusterName,
      },
    ],
    contexts: [{ context: { cluster: clusterName, user: user.name }, name: ctx }],
    'current-context': ctx,
    kind: 'Config',
    preferences: {},
    users: [{ name: user.name, user: u }],
  });
}

/** The kubeconfig inside the cluster-info ConfigMap: cluster only, no users or contexts. */
export function clusterInfoKubeconfig(server: string, caPem: string): string {
  return stringify({
    apiVersion: 'v1',
    clusters: [
      { cluster: { 'certificate-authority-data': Buffer.from(caPem).toString('base64'), server }, name: '' },
    ],
    contexts: null,
    'current-context': '',
    kind: 'Config',
    preferences: {},
    users: null,
  });
}

export interface ParsedKubeconfig {
  server: string;
  caPem: string;
  certPem?: string;
  keyPem?: string;
  token?: string;
}

type Named<T> = { name: string } & T;

/** Reads the current context of a kubeconfig (data fields, or files resolved by `readFile`). */
export function parseKubeconfig(
  doc: Record<string, unknown>,
  readFile: (p: string) => string,
): ParsedKubeconfig {
  const current = doc['current-context'] as string | undefined;
  const contexts = (doc.contexts ?? []) as Named<{ context: { cluster: string; user: string } }>[];
  const clusters = (doc.clusters ?? []) as Named<{ cluster: Record<string, string> }>[];
  const users = (doc.users ?? []) as Named<{ user: Record<string, string> }>[];
  const ctx = contexts.find((c) => c.name === current)?.context;
  const cluster = (ctx ? clusters.find((c) => c.name === ctx.cluster) : clusters[0])?.cluster;
  if (!cluster?.server) throw new Error('kubeconfig has no cluster with a server for its current context');
  const user = ctx ? users.find((u) => u.name === ctx.user)?.user : undefined;
  const data = (d?: string, f?: string) =>
    d ? Buffer.from(d, 'base64').toString() : f ? readFile(f) : undefined;
  return {
    server: cluster.server,
    caPem: data(cluster['certificate-authority-data'], cluster['certificate-authority']) ?? '',
    certPem: data(user?.['client-certificate-data'], user?.['client-certificate']),
    keyPem: data(user?.['client-key-data'], user?.['client-key']),
    token: user?.token,
  };
}
