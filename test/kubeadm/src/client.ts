import { request } from 'node:https';
import { isIP } from 'node:net';

export interface ApiTarget {
  server: string; // https://host:port
  caPem?: string; // undefined: skip verification (discovery's insecure first fetch)
  certPem?: string;
  keyPem?: string;
  token?: string;
}

export interface ApiResponse {
  status: number;
  body: unknown;
  text: string;
}

/** One API request, as client-go would send it; rejects on transport errors only. */
export function apiRequest(
  t: ApiTarget,
  method: string,
  path: string,
  body: unknown,
  timeoutMs: number,
): Promise<ApiResponse> {
  const url = new URL(path, t.server);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        method,
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || 443,
        path: url.pathname + url.search,
        servername: isIP(url.hostname.replace(/^\[|\]$/g, '')) ? undefined : url.hostname,
        ca: t.caPem,
        cert: t.certPem,
        key: t.keyPem,
        rejectUnauthorized: t.caPem !== undefined,
        agent: false,
        headers: {
          Accept: 'application/json',
          'User-Agent': 'kubeadm/standin',
          ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}),
          ...(t.token ? { Authorization: `Bearer ${t.token}` } : {}),
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // plain-text endpoints (/livez)
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, text });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`${method} "${url.href}": net/http: request canceled (Client.Timeout exceeded)`)),
    );
    req.on('error', (e) => reject(new Error(`${method} "${url.href}": ${e.message}`)));
    req.end(payload);
  });
}

/** The message of a Kubernetes Status body, or the raw text. */
export function statusMessage(r: ApiResponse): string {
  const b = r.body as { message?: string } | undefined;
  return b && typeof b === 'object' && b.message ? b.message : `${r.status} ${r.text}`.trim();
}

export async function expectOk(p: Promise<ApiResponse>, what: string): Promise<ApiResponse> {
  const r = await p;
  if (r.status < 200 || r.status >= 300) throw new Error(`${what}: ${statusMessage(r)}`);
  return r;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
