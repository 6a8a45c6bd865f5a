// Bootstrap tokens made the way `kubeadm token create` makes them — a Secret bootstrap-token-<id> of type
// bootstrap.kubernetes.io/token in kube-system — but through the API from the running agent, not a kubeadm process
// per join ticket. Each token is short-lived, for one node, and deleted once that node confirmed its join; one that
// is never confirmed expires, and the controller-manager's token cleaner (kubeadm enables it) deletes it.
import { randomInt } from 'node:crypto';
import { KubeApiError, type KubeApiRequester } from '../../common/kube-api.js';

/** The group kubeadm's bootstrap RBAC (init phase bootstrap-token) lets join, post a CSR and read the join config. */
export const NODE_BOOTSTRAP_GROUP = 'system:bootstrappers:kubeadm:default-node-token';

/**
 * The Secret's data key naming the node the token was issued for (the name the JoinService decided from the EK
 * registry): every control plane's CSR approver (csr-approver.ts) reads it to approve that name's kubelet client
 * certificate and no other. The API server ignores keys it does not know.
 */
export const NODE_NAME_KEY = 'sextant-node-name';

/**
 * How long a join token lives. It must outlast a join up to the kubelet's TLS bootstrap: the component download, then
 * kubeadm's discovery and, for a control plane, its certificate and manifest phases, under TCG minutes each. Used
 * tokens are deleted long before (on ConfirmJoin); this bounds only a token whose node never came back.
 */
export const JOIN_TOKEN_TTL_MS = 30 * 60_000;

export interface BootstrapToken {
  /** The public half: names the Secret (bootstrap-token-<id>) and the user system:bootstrap:<id>. */
  id: string;
  /** Secret: "<id>.<secret>", what kubeadm join is given. */
  token: string;
  expires: Date;
}

/** What the JoinService needs of bootstrap tokens. */
export interface BootstrapTokens {
  /**
   * A fresh token for one join; `description` says whom for (shown by `kubeadm token list`), `nodeName` is the only
   * name its holder's kubelet client certificate is approved for (a token without one gets no certificate).
   */
  create(description: string, nodeName?: string): Promise<BootstrapToken>;
  /** Deletes the token; one already gone (expired and cleaned, or deleted before) is not an error. */
  delete(id: string): Promise<void>;
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const ID = /^[a-z0-9]{6}$/;
const NAMESPACE_PATH = '/api/v1/namespaces/kube-system/secrets';

/** kubeadm's token format ([a-z0-9]{6}.[a-z0-9]{16}), each character uniform from the CSPRNG. */
function randomString(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return s;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** RFC 3339 without fractions, as kubeadm writes `expiration`. */
const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The Secret kubeadm's token create writes (data base64, as kubeadm sends it; the API server reads nothing else). */
export function bootstrapTokenSecret(
  id: string,
  secret: string,
  expires: Date,
  description: string,
  nodeName?: string,
) {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `bootstrap-token-${id}`, namespace: 'kube-system' },
    type: 'bootstrap.kubernetes.io/token',
    data: {
      description: b64(description),
      'token-id': b64(id),
      'token-secret': b64(secret),
      expiration: b64(rfc3339(expires)),
      'usage-bootstrap-authentication': b64('true'),
      // discovery: the bootstrap signer signs cluster-info with every signing token, which kubeadm join checks
      'usage-bootstrap-signing': b64('true'),
      'auth-extra-groups': b64(NODE_BOOTSTRAP_GROUP),
      ...(nodeName === undefined ? {} : { [NODE_NAME_KEY]: b64(nodeName) }),
    },
  };
}

export class ApiBootstrapTokens implements BootstrapTokens {
  constructor(
    private readonly api: KubeApiRequester,
    private readonly options: { ttlMs?: number; now?: () => number } = {},
  ) {}

  async create(description: string, nodeName?: string): Promise<BootstrapToken> {
    const expires = new Date(
      (this.options.now?.() ?? Date.now()) + (this.options.ttlMs ?? JOIN_TOKEN_TTL_MS),
    );
    // 36^6 ids: a clash with a live token is rare but possible; a new id, never an overwrite.
    for (let attempt = 1; ; attempt++) {
      const id = randomString(6);
      const secret = randomString(16);
      try {
        await this.api.request(
          'POST',
          NAMESPACE_PATH,
          bootstrapTokenSecret(id, secret, expires, description, nodeName),
        );
        return { id, token: `${id}.${secret}`, expires };
      } catch (err) {
        if (err instanceof KubeApiError && err.status === 409 && attempt < 3) continue;
        throw new Error(`creating a bootstrap token: ${(err as Error).message}`, { cause: err });
      }
    }
  }

  async delete(id: string): Promise<void> {
    if (!ID.test(id)) throw new TypeError('bootstrap token id: expected [a-z0-9]{6}');
    try {
      await this.api.request('DELETE', `${NAMESPACE_PATH}/bootstrap-token-${id}`);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return;
      throw new Error(`deleting bootstrap token ${id}: ${(err as Error).message}`, { cause: err });
    }
  }
}
