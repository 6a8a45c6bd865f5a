import './reflect-shim.js';
import { X509Certificate as NodeX509, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type ServerOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { alive, OWNER_PID_ENV } from './daemon.js';
import { writeFileAtomic, writeSecretFile } from './fsutil.js';
import type { Rootfs } from './paths.js';
import { type CertKey, issue, loadCertKey, pemOf } from './pki.js';
import { secretToToken, signDetached, splitToken, TOKEN_SECRET_TYPE, tokenExpired } from './tokens.js';
import { versionInfo } from './version.js';

export interface ApiServerSettings {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  caCertFile: string;
  caKeyFile: string;
  certValidityMs: number;
}

type Obj = Record<string, unknown> & {
  metadata?: { name?: string; namespace?: string; [k: string]: unknown };
};
interface Store {
  secrets: Record<string, Obj>;
  configmaps: Record<string, Obj>;
  nodes: Record<string, Obj>;
  csrs: Record<string, Obj>;
}

interface Identity {
  kind: 'anonymous' | 'bootstrap' | 'admin' | 'node' | 'user';
  name: string;
  groups: string[];
}

export const settingsPath = (r: Rootfs) => `${r.stateDir}/apiserver.json`;
const storePath = (r: Rootfs) => `${r.stateDir}/store.json`;

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(
    JSON.stringify({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      reason,
      code,
    }),
  );
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const t = Buffer.concat(chunks).toString();
      try {
        resolve(t ? JSON.parse(t) : undefined);
      } catch (e) {
        reject(e);
      }
    });
    req.on('error', reject);
  });
}

/**
 * The stand-in's API server: just enough of kube-apiserver for kubeadm init/join/token/upload-certs,
 * with the real serving certificate, bootstrap-token and client-certificate authentication.
 */
export async function runApiServer(rootfs: Rootfs): Promise<void> {
  const settings = JSON.parse(readFileSync(settingsPath(rootfs), 'utf8')) as ApiServerSettings;
  const ca: CertKey = await loadCertKey(settings.caCertFile, settings.caKeyFile);
  const caNode = new NodeX509(ca.certPem);
  const store: Store = existsSync(storePath(rootfs))
    ? JSON.parse(readFileSync(storePath(rootfs), 'utf8'))
    : { secrets: {}, configmaps: {}, nodes: {}, csrs: {} };
  const persist = () => writeSecretFile(storePath(rootfs), JSON.stringify(store));

  // The token cleaner and garbage collector: expired tokens go, and so do secrets they own.
  const collect = () => {
    let changed = false;
    for (const [k, s] of Object.entries(store.secrets)) {
      if (s.type !== TOKEN_SECRET_TYPE) continue;
      const t = secretToToken(s as { data?: Record<string, string> });
      if (t && tokenExpired(t)) {
        delete store.secrets[k];
        changed = true;
      }
    }
    for (const [k, s] of Object.entries(store.secrets)) {
      const owners = (s.metadata?.ownerReferences ?? []) as { kind?: string; name?: string }[];
      if (owners.some((o) => o.kind === 'Secret' && !store.secrets[`kube-system/${o.name}`])) {
        delete store.secrets[k];
        changed = true;
      }
    }
    if (changed) persist();
  };

  const tokens = () =>
    Object.values(store.secrets)
      .filter((s) => s.type === TOKEN_SECRET_TYPE)
      .map((s) => secretToToken(s as { data?: Record<string, string> }))
      .filter((t) => t !== undefined);

  const identify = (req: IncomingMessage): Identity | 'unauthorized' => {
    const auth = req.headers.authorization;
    if (auth) {
      const m = /^Bearer (.+)$/.exec(auth);
      const parts = m ? splitToken(m[1]!) : undefined;
      if (!parts) return 'unauthorized';
      const t = tokens().find((x) => x.id === parts.id);
      if (!t || tokenExpired(t) || !t.usages.includes('authentication')) return 'unauthorized';
      const a = Buffer.from(t.secret);
      const b = Buffer.from(parts.secret);
      if (a.length !== b.length || !timingSafeEqual(a, b)) return 'unauthorized';
      return {
        kind: 'bootstrap',
        name: `system:bootstrap:${t.id}`,
        groups: ['system:bootstrappers', ...t.groups],
      };
    }
    const sock = req.socket as TLSSocket;
    const peer = sock.getPeerCertificate?.();
    if (peer?.raw) {
      const cert = new NodeX509(peer.raw);
      if (!cert.verify(caNode.publicKey) || new Date(cert.validTo) < new Date()) return 'unauthorized';
      const subj = Object.fromEntries(
        cert.subject.split('\n').map((l) => [l.split('=')[0], l.slice(l.indexOf('=') + 1)]),
      );
      const orgs = cert.subject
        .split('\n')
        .filter((l) => l.startsWith('O='))
        .map((l) => l.slice(2));
      const cn = subj.CN ?? '';
      if (orgs.includes('system:masters') || orgs.includes('kubeadm:cluster-admins')) {
        return { kind: 'admin', name: cn, groups: orgs };
      }
      if (orgs.includes('system:nodes') && cn.startsWith('system:node:'))
        return { kind: 'node', name: cn, groups: orgs };
      return { kind: 'user', name: cn, groups: orgs };
    }
    return { kind: 'anonymous', name: 'system:anonymous', groups: ['system:unauthenticated'] };
  };

  const clusterInfo = (): Obj | undefined => {
    const cm = store.configmaps['kube-public/cluster-info'];
    if (!cm) return undefined;
    const data = { ...(cm.data as Record<string, string>) };
    const kc = data.kubeconfig ?? '';
    // What the bootstrap signer controller maintains: one detached JWS per valid signing token.
    for (const t of tokens()) {
      if (!tokenExpired(t) && t.usages.includes('signing'))
        data[`jws-kubeconfig-${t.id}`] = signDetached(kc, t.id, t.secret);
    }
    return { ...cm, data };
  };

  const signCsr = async (body: Obj, who: Identity): Promise<Obj> => {
    const spec = (body.spec ?? {}) as { request?: string; signerName?: string; usages?: string[] };
    if (spec.signerName !== 'kubernetes.io/kube-apiserver-client-kubelet') {
      throw Object.assign(new Error(`spec.signerName: Unsupported value: "${spec.signerName}"`), {
        code: 422,
      });
    }
    const csr = new x509.Pkcs10CertificateRequest(Buffer.from(spec.request ?? '', 'base64').toString());
    if (!(await csr.verify()))
      throw Object.assign(new Error('spec.request: Invalid value: CSR signature invalid'), { code: 422 });
    const cn = csr.subjectName.getField('CN')[0] ?? '';
    const orgs = csr.subjectName.getField('O');
    if (!cn.startsWith('system:node:') || orgs.length !== 1 || orgs[0] !== 'system:nodes') {
      throw Object.assign(
        new Error(
          'spec.request: Invalid value: subject must be CN=system:node:<name>, O=system:nodes for signer kubernetes.io/kube-apiserver-client-kubelet',
        ),
        { code: 422 },
      );
    }
    if (who.kind === 'node' && who.name !== cn) {
      throw Object.assign(new Error(`node ${who.name} may not request a certificate for ${cn}`), {
        code: 403,
      });
    }
    const cert = await issue(
      ca,
      { cn, org: ['system:nodes'], usage: 'client', validityMs: settings.certValidityMs },
      await csr.publicKey.export(),
    );
    const name = body.metadata?.name || `csr-${Math.random().toString(36).slice(2, 7)}`;
    const obj: Obj = {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name, creationTimestamp: new Date().toISOString() },
      spec: { ...spec, username: who.name, groups: who.groups },
      status: {
        conditions: [
          {
            type: 'Approved',
            status: 'True',
            reason: 'AutoApproved',
            message: 'Auto approving kubelet client certificate after SubjectAccessReview.',
          },
        ],
        certificate: Buffer.from(pemOf(cert)).toString('base64'),
      },
    };
    store.csrs[name] = obj;
    persist();
    return obj;
  };

  const may = (who: Identity, verb: string, resource: string, ns: string, name: string): boolean => {
    if (who.kind === 'admin') return true;
    if (resource === 'configmaps' && verb === 'get') {
      if (ns === 'kube-public' && name === 'cluster-info') return true;
      if (
        who.kind !== 'anonymous' &&
        ns === 'kube-system' &&
        ['kubeadm-config', 'kubelet-config'].includes(name)
      )
        return true;
    }
    if (who.kind === 'bootstrap' && resource === 'secrets' && verb === 'get' && name === 'kubeadm-certs') {
      return who.groups.includes('system:bootstrappers:kubeadm:default-node-token');
    }
    if ((who.kind === 'bootstrap' || who.kind === 'node') && resource === 'certificatesigningrequests') {
      return verb === 'create' || verb === 'get';
    }
    if (who.kind === 'node' && resource === 'nodes') return name === who.name.slice('system:node:'.length);
    return false;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'https://x');
    const p = url.pathname;
    const method = req.method ?? 'GET';
    if (method === 'GET' && ['/livez', '/readyz', '/healthz'].includes(p)) {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok');
      return;
    }
    if (method === 'GET' && p === '/version') return json(res, 200, versionInfo());
    const who = identify(req);
    if (who === 'unauthorized') return status(res, 401, 'Unauthorized', 'Unauthorized');
    collect();
    const verb =
      { GET: 'get', POST: 'create', PUT: 'update', DELETE: 'delete' }[method] ?? method.toLowerCase();

    let m = /^\/api\/v1\/namespaces\/([^/]+)\/(secrets|configmaps)(?:\/([^/]+))?$/.exec(p);
    if (m) {
      const [, ns, resource, name = ''] = m as unknown as [string, string, 'secrets' | 'configmaps', string?];
      const coll = store[resource];
      const isList = name === '' && verb === 'get';
      if (!may(who, isList ? 'list' : verb, resource, ns, name)) {
        return status(
          res,
          403,
          'Forbidden',
          `${resource} "${name}" is forbidden: User "${who.name}" cannot ${isList ? 'list' : verb} resource "${resource}" in API group "" in the namespace "${ns}"`,
        );
      }
      const kind = resource === 'secrets' ? 'Secret' : 'ConfigMap';
      if (isList) {
        const sel = url.searchParams.get('fieldSelector') ?? '';
        const wantType = /^type=(.+)$/.exec(sel)?.[1];
        const items = Object.entries(coll)
          .filter(([k, o]) => k.startsWith(`${ns}/`) && (!wantType || o.type === wantType))
          .map(([, o]) => o);
        return json(res, 200, { apiVersion: 'v1', kind: `${kind}List`, metadata: {}, items });
      }
      if (verb === 'get') {
        const obj =
          resource === 'configmaps' && ns === 'kube-public' && name === 'cluster-info'
            ? clusterInfo()
            : coll[`${ns}/${name}`];
        if (!obj) return status(res, 404, 'NotFound', `${resource} "${name}" not found`);
        return json(res, 200, obj);
      }
      if (verb === 'create' || verb === 'update') {
        const body = (await readBody(req)) as Obj;
        const objName = body?.metadata?.name ?? '';
        if (!objName || (verb === 'update' && objName !== name)) {
          return status(
            res,
            422,
            'Invalid',
            `${kind} "${objName}" is invalid: metadata.name: Required value`,
          );
        }
        const key = `${ns}/${objName}`;
        if (verb === 'create' && coll[key])
          return status(res, 409, 'AlreadyExists', `${resource} "${objName}" already exists`);
        coll[key] = {
          ...body,
          metadata: { ...body.metadata, namespace: ns, creationTimestamp: new Date().toISOString() },
        };
        persist();
        return json(res, verb === 'create' ? 201 : 200, coll[key]);
      }
      if (verb === 'delete') {
        if (!coll[`${ns}/${name}`]) return status(res, 404, 'NotFound', `${resource} "${name}" not found`);
        delete coll[`${ns}/${name}`];
        persist();
        return json(res, 200, { kind: 'Status', apiVersion: 'v1', status: 'Success' });
      }
    }
    m = /^\/apis\/certificates\.k8s\.io\/v1\/certificatesigningrequests(?:\/([^/]+))?$/.exec(p);
    if (m) {
      if (!may(who, verb, 'certificatesigningrequests', '', m[1] ?? '')) {
        return status(
          res,
          403,
          'Forbidden',
          `certificatesigningrequests.certificates.k8s.io is forbidden: User "${who.name}" cannot ${verb} resource "certificatesigningrequests"`,
        );
      }
      if (verb === 'create' && !m[1]) {
        try {
          return json(res, 201, await signCsr((await readBody(req)) as Obj, who));
        } catch (e) {
          const code = (e as { code?: number }).code ?? 400;
          return status(res, code, code === 403 ? 'Forbidden' : 'Invalid', (e as Error).message);
        }
      }
      if (verb === 'get' && m[1]) {
        const o = store.csrs[m[1]];
        return o
          ? json(res, 200, o)
          : status(
              res,
              404,
              'NotFound',
              `certificatesigningrequests.certificates.k8s.io "${m[1]}" not found`,
            );
      }
    }
    m = /^\/api\/v1\/nodes(?:\/([^/]+))?$/.exec(p);
    if (m) {
      const name = m[1] ?? '';
      if (!may(who, name ? verb : 'list', 'nodes', '', name)) {
        return status(
          res,
          403,
          'Forbidden',
          `nodes "${name}" is forbidden: User "${who.name}" cannot ${verb} resource "nodes"`,
        );
      }
      if (!name && verb === 'get')
        return json(res, 200, {
          apiVersion: 'v1',
          kind: 'NodeList',
          metadata: {},
          items: Object.values(store.nodes),
        });
      if (name && verb === 'get') {
        const o = store.nodes[name];
        return o ? json(res, 200, o) : status(res, 404, 'NotFound', `nodes "${name}" not found`);
      }
      if (name && verb === 'update') {
        const body = (await readBody(req)) as Obj;
        store.nodes[name] = { ...body, metadata: { ...body.metadata, name } };
        persist();
        return json(res, 200, store.nodes[name]);
      }
    }
    return status(res, 404, 'NotFound', 'the server could not find the requested resource');
  };

  const opts: ServerOptions = {
    cert: readFileSync(settings.certFile),
    key: readFileSync(settings.keyFile),
    ca: ca.certPem,
    requestCert: true,
    rejectUnauthorized: false,
  };
  const server = createServer(opts, (req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) status(res, 500, 'InternalError', (e as Error).message);
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => resolve());
  });
  process.stdout.write(
    `${new Date().toISOString()} kube-apiserver stand-in serving on https://${settings.host}:${settings.port}\n`,
  );
  writeFileAtomic(`${rootfs.runDir}/apiserver.ready`, String(process.pid));
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Detached like a static Pod, it outlives kubeadm and agent restarts, but not the run that owns the node
  // (a test, the dev cluster): whatever kills that run, this daemon follows it.
  const owner = Number(process.env[OWNER_PID_ENV]);
  if (Number.isInteger(owner) && owner > 0) {
    setInterval(() => {
      if (!alive(owner)) process.exit(0);
    }, 1000).unref();
  }
}
