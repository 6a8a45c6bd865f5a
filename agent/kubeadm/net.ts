import { isIP } from 'node:net';

/** Thrown for a bad kubeadm input; `field` names it as the caller passed it. */
export class KubeadmConfigError extends Error {
  override name = 'KubeadmConfigError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** RFC 1123 subdomain, as Kubernetes validates node names and DNS SANs. */
export function isDnsSubdomain(s: string): boolean {
  return s.length > 0 && s.length <= 253 && s.split('.').every((l) => DNS_LABEL.test(l));
}

/** A SAN may also be a wildcard in its leftmost label only, as kubeadm allows. */
export function isSan(s: string): boolean {
  if (isIP(s) !== 0) return true;
  if (s.startsWith('*.')) return isDnsSubdomain(s.slice(2));
  return isDnsSubdomain(s);
}

export function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** Splits "host", "host:port", "[v6]" or "[v6]:port"; a bare IPv6 address is a host without port. */
export function splitHostPort(s: string): { host: string; port?: number; portText?: string } {
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0) return { host: s };
    const host = s.slice(1, end);
    const rest = s.slice(end + 1);
    if (rest === '') return { host };
    if (!rest.startsWith(':')) return { host: s };
    const portText = rest.slice(1);
    return { host, portText, port: /^\d+$/.test(portText) ? Number(portText) : Number.NaN };
  }
  if (isIP(s) === 6) return { host: s };
  const colon = s.lastIndexOf(':');
  if (colon < 0) return { host: s };
  const portText = s.slice(colon + 1);
  return { host: s.slice(0, colon), portText, port: /^\d+$/.test(portText) ? Number(portText) : Number.NaN };
}

export function joinHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Checks "host[:port]" (or, with requirePort, "host:port") where host is an IP or a DNS name.
 * Returns the reason it is wrong, or undefined.
 */
export function endpointProblem(s: string, requirePort: boolean): string | undefined {
  const { host, port, portText } = splitHostPort(s);
  if (host === '' || (isIP(host) === 0 && !isDnsSubdomain(host)))
    return 'host must be an IP address or a DNS name';
  if (portText === undefined) return requirePort ? 'a port is required (host:port)' : undefined;
  if (!isPort(port)) return 'port must be in 1-65535';
  return undefined;
}

/** Parses one CIDR; the address must be the network address (no host bits set). */
export function cidrProblem(s: string): string | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return 'expected a CIDR such as 10.96.0.0/12';
  const addr = s.slice(0, slash);
  const prefixText = s.slice(slash + 1);
  const family = isIP(addr);
  if (family === 0) return `${addr} is not an IP address`;
  const bits = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) return `prefix length must be 0-${bits}`;
  const prefix = Number(prefixText);
  const value = family === 4 ? ipv4ToBigInt(addr) : ipv6ToBigInt(addr);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((value & hostMask) !== 0n)
    return `host bits are set; did you mean ${networkOf(family, value & ~hostMask)}/${prefix}?`;
  return undefined;
}

export function cidrFamilyAndPrefix(s: string): { family: number; prefix: number } {
  const [addr = '', prefix = '0'] = s.split('/');
  return { family: isIP(addr), prefix: Number(prefix) };
}

function ipv4ToBigInt(a: string): bigint {
  return a.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}

function ipv6ToBigInt(a: string): bigint {
  let text = a;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const n = ipv4ToBigInt(v4[1]);
    text = `${text.slice(0, -v4[1].length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

function networkOf(family: number, v: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => ((v >> s) & 0xffn).toString()).join('.');
  const parts: string[] = [];
  for (let i = 7; i >= 0; i--) parts.push(((v >> BigInt(i * 16)) & 0xffffn).toString(16));
  return parts.join(':');
}
