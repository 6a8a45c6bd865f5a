// Approves a joining kubelet's client certificate only for the name the JoinService gave that node. kubeadm's own
// auto-approval (ClusterRoleBinding kubeadm:node-autoapprove-bootstrap) lets the controller-manager approve a
// system:node:<ANY name> CSR from ANY bootstrap-token holder — a compromised joining node could take a control
// plane's node identity while its token lives — so the JoinService deletes that binding and runs this instead: a
// kubelet-client CSR from system:bootstrap:<id> is approved only when the token's Secret names a node (the name the
// EK registry assigned, written there by bootstrap-token.ts) and the request asks for exactly that identity; any
// other bootstrap CSR whose token it can read is denied with the reason. CSRs of other users (a node renewing its
// own certificate as system:node:<name>) are left to the controller-manager's selfnodeclient approver.
// Every control plane runs one; approving twice is harmless (the API server keeps one Approved condition per call
// and the second write conflicts on resourceVersion, which is skipped).

import { KubeApiError, type KubeApiRequester } from '../../common/kube-api.js';
import { x509 } from '../../common/x509.js';
import type { Logger } from '../log/index.js';
import { NODE_NAME_KEY } from './bootstrap-token.js';

export const KUBELET_CLIENT_SIGNER = 'kubernetes.io/kube-apiserver-client-kubelet';
/** kubeadm's binding that auto-approves every bootstrap-token holder's node client CSR (deleted, see above). */
export const AUTO_APPROVE_BOOTSTRAP_BINDING = 'kubeadm:node-autoapprove-bootstrap';

const BOOTSTRAP_USER = /^system:bootstrap:([a-z0-9]{6})$/;
/** What the kubelet asks for (and the controller-manager's own kubelet-client check allows). */
const ALLOWED_USAGES = new Set(['client auth', 'digital signature', 'key encipherment']);
const SUBJECT_ALT_NAME = '2.5.29.17';

export interface Csr {
  metadata: { name: string; resourceVersion?: string };
  spec: { request: string; signerName: string; username?: string; usages?: string[] };
  status?: { conditions?: { type: string; status?: string }[] };
}

export type Decision =
  | { verdict: 'ignore' }
  | { verdict: 'approve'; nodeName: string }
  | { verdict: 'deny'; reason: string };

/** The token id of a bootstrap-token requester, else undefined (the CSR is not this approver's to judge). */
export function bootstrapTokenId(csr: Csr): string | undefined {
  if (csr.spec.signerName !== KUBELET_CLIENT_SIGNER) return undefined;
  return BOOTSTRAP_USER.exec(csr.spec.username ?? '')?.[1];
}

const decided = (csr: Csr) =>
  (csr.status?.conditions ?? []).some((c) => c.type === 'Approved' || c.type === 'Denied');

/**
 * The verdict on one CSR given the node name its token's Secret records (undefined: the Secret names none). Pure:
 * the table tests drive it directly.
 */
export function decide(csr: Csr, tokenNodeName: string | undefined): Decision {
  const id = bootstrapTokenId(csr);
  if (id === undefined || decided(csr)) return { verdict: 'ignore' };
  if (!tokenNodeName) return { verdict: 'deny', reason: `bootstrap token ${id} names no node` };
  const want = `system:node:${tokenNodeName}`;
  const usages = csr.spec.usages ?? [];
  if (!usages.includes('client auth'))
    return { verdict: 'deny', reason: 'usages: expected client auth, got none' };
  const extra = usages.filter((u) => !ALLOWED_USAGES.has(u));
  if (extra.length > 0)
    return {
      verdict: 'deny',
      reason: `usages: expected only client auth, digital signature, key encipherment; got ${extra.join(', ')}`,
    };
  let request: x509.Pkcs10CertificateRequest;
  try {
    request = new x509.Pkcs10CertificateRequest(Buffer.from(csr.spec.request, 'base64').toString('utf8'));
  } catch {
    return { verdict: 'deny', reason: 'request: not a PEM PKCS#10 certificate request' };
  }
  const attributes = request.subjectName
    .toJSON()
    .flatMap((rdn) => Object.entries(rdn).flatMap(([type, values]) => values.map((v) => [type, v])));
  const cn = attributes.filter(([t]) => t === 'CN').map(([, v]) => v);
  const o = attributes.filter(([t]) => t === 'O').map(([, v]) => v);
  const shown = request.subject.slice(0, 200);
  if (cn.length !== 1 || cn[0] !== want)
    return { verdict: 'deny', reason: `subject: expected CN=${want} (the token's node), got ${shown}` };
  if (o.length !== 1 || o[0] !== 'system:nodes' || attributes.length !== 2)
    return { verdict: 'deny', reason: `subject: expected exactly CN=${want}, O=system:nodes, got ${shown}` };
  if (request.extensions.some((e) => e.type === SUBJECT_ALT_NAME))
    return {
      verdict: 'deny',
      reason: 'request: a kubelet client certificate carries no subject alternative names',
    };
  return { verdict: 'approve', nodeName: tokenNodeName };
}

const CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
const SECRETS_PATH = '/api/v1/namespaces/kube-system/secrets';

/** Deletes kubeadm's auto-approval of bootstrap CSRs; already gone is fine (every control plane does it at start). */
export async function removeBootstrapAutoApproval(api: KubeApiRequester): Promise<boolean> {
  try {
    await api.request(
      'DELETE',
      `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${AUTO_APPROVE_BOOTSTRAP_BINDING}`,
    );
    return true;
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return false;
    throw new Error(
      `deleting ClusterRoleBinding ${AUTO_APPROVE_BOOTSTRAP_BINDING}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

export interface CsrApproverOptions {
  log: Logger;
  /** How often pending CSRs are listed (default 2 s: a kubelet's bootstrap waits on it). */
  intervalMs?: number;
  /**
   * How often kubeadm's auto-approval binding is deleted again (default 60 s; the first pass always does): a kubeadm
   * run that re-applies its bootstrap RBAC (upgrade) would bring it back.
   */
  bindingCheckMs?: number;
  now?: () => number;
}

/** Polls kubelet-client CSRs and judges the bootstrap ones (see the top of this file). */
export class CsrApprover {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #nextBindingCheck = 0;
  /** The last failure said, so an unreachable API server is one warning, not one per pass. */
  #lastFailure = '';

  constructor(
    private readonly api: KubeApiRequester,
    private readonly options: CsrApproverOptions,
  ) {}

  start(): void {
    const tick = () => {
      this.#running = this.pass()
        .then(() => {
          if (this.#lastFailure) this.options.log.info('CSR approver: the API answers again');
          this.#lastFailure = '';
        })
        .catch((err: Error) => {
          if (err.message !== this.#lastFailure) this.options.log.warn(`CSR approver: ${err.message}`);
          this.#lastFailure = err.message;
        })
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(tick, this.options.intervalMs ?? 2000);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  /** One look at the pending CSRs; returns what it did (tests). */
  async pass(): Promise<{ name: string; decision: Decision }[]> {
    const now = this.options.now?.() ?? Date.now();
    if (now >= this.#nextBindingCheck) {
      if (await removeBootstrapAutoApproval(this.api))
        this.options.log.info(
          `deleted ClusterRoleBinding ${AUTO_APPROVE_BOOTSTRAP_BINDING}: bootstrap CSRs are approved by node name only`,
        );
      this.#nextBindingCheck = now + (this.options.bindingCheckMs ?? 60_000);
    }
    const list = await this.api.request<{ items?: Csr[] }>(
      'GET',
      `${CSR_PATH}?fieldSelector=${encodeURIComponent(`spec.signerName=${KUBELET_CLIENT_SIGNER}`)}`,
    );
    const done: { name: string; decision: Decision }[] = [];
    for (const csr of list.items ?? []) {
      const id = bootstrapTokenId(csr);
      if (id === undefined || decided(csr)) continue;
      const secret = await this.#tokenSecret(id);
      // a token this control plane cannot read (gone, or not a Sextant one it can see): left alone, nothing approves it
      if (secret === undefined) continue;
      const raw = secret.data?.[NODE_NAME_KEY];
      const decision = decide(
        csr,
        raw === undefined ? undefined : Buffer.from(raw, 'base64').toString('utf8'),
      );
      if (decision.verdict === 'ignore') continue;
      if (await this.#record(csr, decision)) done.push({ name: csr.metadata.name, decision });
    }
    return done;
  }

  async #tokenSecret(id: string): Promise<{ data?: Record<string, string> } | undefined> {
    try {
      return await this.api.request('GET', `${SECRETS_PATH}/bootstrap-token-${id}`);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** Writes the Approved/Denied condition; false when someone else decided it first (409). */
  async #record(csr: Csr, decision: Exclude<Decision, { verdict: 'ignore' }>): Promise<boolean> {
    const approve = decision.verdict === 'approve';
    const condition = {
      type: approve ? 'Approved' : 'Denied',
      status: 'True',
      reason: approve ? 'SextantNodeNameMatches' : 'SextantNodeNameMismatch',
      message: approve ? `the bootstrap token was issued for node ${decision.nodeName}` : decision.reason,
      lastUpdateTime: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    };
    const body = {
      ...csr,
      status: { ...csr.status, conditions: [...(csr.status?.conditions ?? []), condition] },
    };
    try {
      await this.api.request('PUT', `${CSR_PATH}/${csr.metadata.name}/approval`, body);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 409) return false;
      throw new Error(`CSR ${csr.metadata.name}: ${condition.type}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const what = approve ? `approved for ${decision.nodeName}` : `denied: ${decision.reason}`;
    (approve ? this.options.log.info : this.options.log.warn).call(
      this.options.log,
      `kubelet client CSR ${csr.metadata.name} from ${csr.spec.username} ${what}`,
    );
    return true;
  }
}
