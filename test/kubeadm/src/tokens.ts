import { createHmac, timingSafeEqual } from 'node:crypto';

export const TOKEN_RE = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
export const TOKEN_SECRET_TYPE = 'bootstrap.kubernetes.io/token';
export const DEFAULT_GROUP = 'system:bootstrappers:kubeadm:default-node-token';

export interface BootstrapToken {
  id: string;
  secret: string;
  description?: string;
  expires?: Date;
  usages: string[];
  groups: string[];
}

export function splitToken(token: string): { id: string; secret: string } | undefined {
  const m = TOKEN_RE.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString());

/** The kube-system Secret that backs a bootstrap token, as kubeadm creates it. */
export function tokenToSecret(t: BootstrapToken): Record<string, unknown> {
  const data: Record<string, string> = { 'token-id': b64(t.id), 'token-secret': b64(t.secret) };
  if (t.description) data.description = b64(t.description);
  if (t.expires) data.expiration = b64(t.expires.toISOString().replace(/\.\d{3}Z$/, 'Z'));
  for (const u of t.usages) data[`usage-bootstrap-${u}`] = b64('true');
  if (t.groups.length > 0) data['auth-extra-groups'] = b64(t.groups.join(','));
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `bootstrap-token-${t.id}`, namespace: 'kube-system' },
    type: TOKEN_SECRET_TYPE,
    data,
  };
}

export function secretToToken(s: { data?: Record<string, string> }): BootstrapToken | undefined {
  const d = s.data ?? {};
  const id = unb64(d['token-id']);
  const secret = unb64(d['token-secret']);
  if (!id || !secret) return undefined;
  const exp = unb64(d.expiration);
  const usages = Object.keys(d)
    .filter((k) => k.startsWith('usage-bootstrap-') && unb64(d[k]) === 'true')
    .map((k) => k.slice('usage-bootstrap-'.length))
    .sort();
  return {
    id,
    secret,
    description: unb64(d.description),
    expires: exp ? new Date(exp) : undefined,
    usages,
    groups: (unb64(d['auth-extra-groups']) ?? '').split(',').filter(Boolean),
  };
}

export function tokenExpired(t: BootstrapToken, now = Date.now()): boolean {
  return t.expires !== undefined && t.expires.getTime() <= now;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/**
 * The detached JWS the bootstrap signer puts in cluster-info as `jws-kubeconfig-<id>`:
 * compact HS256 JWS keyed by the token secret, with the payload section removed.
 */
export function signDetached(payload: string, id: string, secret: string): string {
  const header = b64url(JSON.stringify({ alg: 'HS256', kid: id }));
  const sig = createHmac('sha256', secret)
    .update(`${header}.${b64url(payload)}`)
    .digest();
  return `${header}..${b64url(sig)}`;
}

export function verifyDetached(jws: string, payload: string, id: string, secret: string): boolean {
  const parts = jws.split('.');
  if (parts.length !== 3 || parts[1] !== '') return false;
  let header: { alg?: string; kid?: string };
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString());
  } catch {
    return false;
  }
  if (header.alg !== 'HS256' || header.kid !== id) return false;
  const want = createHmac('sha256', secret)
    .update(`${parts[0]}.${b64url(payload)}`)
    .digest();
  const got = Buffer.from(parts[2]!, 'base64url');
  return got.length === want.length && timingSafeEqual(got, want);
}
