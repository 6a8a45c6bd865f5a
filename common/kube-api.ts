// A client for a cluster's API server from an admin kubeconfig as kubeadm writes it (embedded CA and client
// certificate), JSON over one keep-alive HTTPS agent: the agent's JoinService and `sextant status` share it.
// Hand-written, not @kubernetes/client-node, for measured reasons: that library's current major (2.x) needs
// Node >= 22.19 (undici 8) while the agent runs on Node 20; its 1.x line adds 75 packages (57 MB) and 4.5 MB to the
// 2.8 MB agent bundle the image measures, for the few calls made. kubeconfig parsing is limited to what kubeadm writes.
import { Agent, request } from 'node:https';
import * as v from 'valibot';
import { parse } from 'yaml';
import { parseWith } from './schema.js';

export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    message: string,
    /** HTTP status; 0 when no answer came. */
    readonly status: number,
    /** The API's Status reason (NotFound, AlreadyExists, Forbidden, ...), if it gave one. */
    readonly reason = '',
  ) {
    super(message);
  }
}

export interface KubeCredentials {
  server: URL;
  caPem: string;
  certPem: string;
  keyPem: string;
}

const nonEmpty = v.pipe(v.string(), v.minLength(1, 'expected a non-empty string'));
const list = <S extends v.GenericSchema>(item: S) => v.array(item, 'expected a list');
const KUBECONFIG = v.object({
  'current-context': nonEmpty,
  contexts: list(v.object({ name: nonEmpty, context: v.object({ cluster: nonEmpty, user: nonEmpty }) })),
  clusters: list(
    v.object({
      name: nonEmpty,
      cluster: v.object({
        server: v.pipe(nonEmpty, v.startsWith('https://', 'expected an https:// URL')),
        'certificate-authority-data': nonEmpty,
      }),
    }),
  ),
  users: list(
    v.object({
      name: nonEmpty,
      user: v.object({ 'client-certificate-data': nonEmpty, 'client-key-data': nonEmpty }),
    }),
  ),
});

/**
 * The server and credentials of a kubeconfig's current context, as kubeadm writes admin.conf (CA, certificate and
 * key embedded as -data). It holds the admin key: errors name the key path, never a value.
 */
export function credentialsFromKubeconfig(text: string, where: string): KubeCredentials {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch {
    throw new Error(`${where}: not valid YAML`);
  }
  let config: v.InferOutput<typeof KUBECONFIG>;
  try {
    config = parseWith(KUBECONFIG, doc, { redact: true });
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`);
  }
  const context = config.contexts.find((c) => c.name === config['current-context']);
  if (!context) throw new Error(`${where}: current-context names no context of the file`);
  const cluster = config.clusters.find((c) => c.name === context.context.cluster);
  const user = config.users.find((u) => u.name === context.context.user);
  if (!cluster) throw new Error(`${where}: the current context's cluster is not in clusters`);
  if (!user) throw new Error(`${where}: the current context's user is not in users`);
  const pem = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');
  return {
    server: new URL(cluster.cluster.server),
    caPem: pem(cluster.cluster['certificate-authority-data']),
    certPem: pem(user.user['client-certificate-data']),
    keyPem: pem(user.user['client-key-data']),
  };
}

/** What the callers ask of the API; tests swap it for a fake. */
export interface KubeApiRequester {
  request<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T>;
}

const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export class KubeApi implements KubeApiRequester {
  readonly #agent: Agent;

  constructor(
    private readonly credentials: KubeCredentials,
    private readonly options: { timeoutMs?: number } = {},
  ) {
    this.#agent = new Agent({
      keepAlive: true,
      ca: credentials.caPem,
      cert: credentials.certPem,
      key: credentials.keyPem,
    });
  }

  /** One request; resolves with the JSON body of a 2xx answer, rejects with KubeApiError otherwise. */
  request<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const url = new URL(path, this.credentials.server);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const what = `${method} ${url.pathname}`;
    return new Promise<T>((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          agent: this.#agent,
          timeout: this.options.timeoutMs ?? 15_000,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) {
              res.destroy(new Error(`answer larger than ${MAX_RESPONSE_BYTES} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('error', (err) => reject(new KubeApiError(`${what}: ${err.message}`, 0)));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              parsed = undefined;
            }
            if (status >= 200 && status < 300) {
              resolve(parsed as T);
              return;
            }
            const s = (parsed ?? {}) as { message?: unknown; reason?: unknown };
            const message = typeof s.message === 'string' ? s.message.slice(0, 300) : `HTTP ${status}`;
            const reason = typeof s.reason === 'string' ? s.reason : '';
            reject(new KubeApiError(`${what}: ${status} ${message}`, status, reason));
          });
        },
      );
      req.on('timeout', () =>
        req.destroy(new Error(`no answer within ${this.options.timeoutMs ?? 15_000} ms`)),
      );
      req.on('error', (err) => reject(new KubeApiError(`${what}: ${err.message}`, 0)));
      req.end(payload);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}
