// Where the master secret lives, as sextant-conf.yaml's `kms` names it: one URI, no credentials in it.
//   file                                                  sextant-mastersecret.json in the workspace (default)
//   transit+http(s)://HOST:PORT/MOUNT/KEY[?ca-file=PEM]   an OpenBao/Vault transit key wraps it
//   pkcs11:token=LABEL;object=LABEL?module-path=SO[&pin-source=FILE]   a PKCS#11 token's AES key wraps it (RFC 7512)

export type KmsSpec =
  | { mode: 'file' }
  | {
      mode: 'transit';
      /** http(s)://host:port, no path. */
      address: string;
      /** The transit engine's mount path, e.g. "transit". */
      mount: string;
      key: string;
      /** PEM CA bundle for an https address (a path: nothing secret). */
      caFile?: string;
    }
  | {
      mode: 'pkcs11';
      modulePath: string;
      token: string;
      object: string;
      /** A file holding the user PIN (a path: the PIN itself never goes into the config). */
      pinSource?: string;
    };

export const KMS_URI_FORMS =
  '"file", "transit+https://HOST:PORT/MOUNT/KEY" (or transit+http on loopback) or "pkcs11:token=T;object=O?module-path=/path/lib.so"';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function fail(why: string): never {
  throw new Error(why);
}

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return fail(`${what}: bad percent-encoding`);
  }
}

function parseTransit(uri: string): KmsSpec {
  let url: URL;
  try {
    url = new URL(uri.slice('transit+'.length));
  } catch {
    return fail(`not a URL after "transit+" (expected ${KMS_URI_FORMS})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail('expected transit+http or transit+https');
  if (url.username || url.password)
    fail('credentials do not belong in the config (use BAO_TOKEN or a token file)');
  if (url.hash) fail('no "#fragment" expected');
  const parts = url.pathname.split('/').filter((p) => p !== '');
  if (parts.length < 2) fail('expected the path /MOUNT/KEY (e.g. /transit/sextant)');
  for (const p of parts)
    if (!NAME.test(decode(p, 'path')))
      fail(`path segment ${JSON.stringify(p)}: expected letters, digits, ".", "_", "-"`);
  const key = decode(parts[parts.length - 1] as string, 'key');
  const mount = parts
    .slice(0, -1)
    .map((p) => decode(p, 'mount'))
    .join('/');
  let caFile: string | undefined;
  for (const [name, value] of url.searchParams) {
    if (name === 'ca-file' && value !== '') caFile = value;
    else if (/token|secret|password/i.test(name))
      fail(`"${name}": credentials do not belong in the config (use BAO_TOKEN or a token file)`);
    else fail(`unknown query attribute "${name.slice(0, 40)}" (expected ca-file)`);
  }
  if (caFile !== undefined && url.protocol !== 'https:') fail('ca-file only goes with transit+https');
  return {
    mode: 'transit',
    address: `${url.protocol}//${url.host}`,
    mount,
    key,
    ...(caFile !== undefined ? { caFile } : {}),
  };
}

function parsePkcs11(uri: string): KmsSpec {
  const body = uri.slice('pkcs11:'.length);
  const q = body.indexOf('?');
  const path = q < 0 ? body : body.slice(0, q);
  const query = q < 0 ? '' : body.slice(q + 1);
  const attrs: Record<string, string> = {};
  for (const item of path.split(';').filter((s) => s !== '')) {
    const eq = item.indexOf('=');
    if (eq < 1) fail(`path attribute ${JSON.stringify(item.slice(0, 40))}: expected name=value`);
    const name = item.slice(0, eq);
    if (name !== 'token' && name !== 'object')
      fail(`unknown path attribute "${name.slice(0, 40)}" (expected token, object)`);
    attrs[name] = decode(item.slice(eq + 1), name);
  }
  for (const item of query.split('&').filter((s) => s !== '')) {
    const eq = item.indexOf('=');
    if (eq < 1) fail(`query attribute ${JSON.stringify(item.slice(0, 40))}: expected name=value`);
    const name = item.slice(0, eq);
    if (name === 'pin-value')
      fail('"pin-value": the PIN does not belong in the config (use pin-source=FILE or SEXTANT_PKCS11_PIN)');
    if (name !== 'module-path' && name !== 'pin-source')
      fail(`unknown query attribute "${name.slice(0, 40)}" (expected module-path, pin-source)`);
    attrs[name] = decode(item.slice(eq + 1), name);
  }
  const { token, object } = attrs;
  const modulePath = attrs['module-path'];
  if (!token) fail('missing token=LABEL (the PKCS#11 token holding the wrapping key)');
  if (!object) fail("missing object=LABEL (the wrapping key's label)");
  if (!modulePath?.startsWith('/')) fail('missing module-path=/absolute/path/of/the/module.so');
  const pinSource = attrs['pin-source'];
  return {
    mode: 'pkcs11',
    modulePath,
    token,
    object,
    ...(pinSource !== undefined ? { pinSource: pinSource.replace(/^file:/, '') } : {}),
  };
}

/** Parses a kms URI; throws an Error saying what is wrong (never quoting more than a short excerpt). */
export function parseKmsUri(uri: string): KmsSpec {
  if (uri === 'file') return { mode: 'file' };
  if (uri.startsWith('transit+')) return parseTransit(uri);
  if (uri.startsWith('pkcs11:')) return parsePkcs11(uri);
  return fail(`expected ${KMS_URI_FORMS}`);
}

/** The key as the operator would name it in an error: which KMS, which key. */
export function describeKey(spec: KmsSpec): string {
  switch (spec.mode) {
    case 'file':
      return 'the workspace file sextant-mastersecret.json (no KMS)';
    case 'transit':
      return `transit key "${spec.key}" (mount ${spec.mount}) at ${spec.address}`;
    case 'pkcs11':
      return `PKCS#11 key "${spec.object}" on token "${spec.token}" (${spec.modulePath})`;
  }
}

/** What identifies the wrapping key regardless of where the server is reached: a wrapped blob records it. */
export function keyIdentity(spec: KmsSpec): string {
  switch (spec.mode) {
    case 'file':
      return 'file';
    case 'transit':
      return `transit:${spec.mount}/${spec.key}`;
    case 'pkcs11':
      return `pkcs11:${spec.token}/${spec.object}`;
  }
}
