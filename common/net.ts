// Addresses, CIDRs, DNS names and host:port endpoints: one set of rules for the CLI and the agent, kept strict so
// that a value one side accepts is one the other side, kubeadm and Kubernetes accept too — no host bits in a CIDR,
// no zone IDs, no leading zeros in an IPv4 address, IPv6 in brackets when a port follows.
import { isIPv4, isIPv6 } from 'node:net';

export interface IpAddress {
  family: 4 | 6;
  value: bigint;
}

export interface Cidr {
  family: 4 | 6;
  base: bigint;
  prefix: number;
}

/** A TCP endpoint; `host` is an IP address (IPv6 without brackets) or a lowercase DNS name. */
export interface Endpoint {
  host: string;
  port: number;
}

/** A malformed address, CIDR or endpoint; the message is the reason only, the caller names the field. */
export class NetFormatError extends TypeError {
  override name = 'NetFormatError';
}

function ipv4ToBigInt(s: string): bigint {
  return s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function ipv6ToBigInt(s: string): bigint {
  let text = s;
  // a dotted IPv4 tail (::ffff:10.0.0.1) becomes two hex groups
  const tail = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const v4 = ipv4ToBigInt(tail[2] as string);
    text = `${tail[1]}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups =
    rest === undefined ? headGroups : [...headGroups, ...Array(missing).fill('0'), ...tailGroups];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

function formatIp(family: 4 | 6, v: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => ((v >> s) & 0xffn).toString()).join('.');
  const parts: string[] = [];
  for (let i = 7; i >= 0; i--) parts.push(((v >> BigInt(i * 16)) & 0xffffn).toString(16));
  return parts.join(':');
}

/** An IPv4 or IPv6 address (no zone ID, no leading zeros), or undefined. */
export function parseIp(s: string): IpAddress | undefined {
  if (isIPv4(s)) {
    // leading zeros are ambiguous (octal to some tools)
    if (s.split('.').some((p) => p.length > 1 && p.startsWith('0'))) return undefined;
    return { family: 4, value: ipv4ToBigInt(s) };
  }
  if (isIPv6(s) && !s.includes('%')) return { family: 6, value: ipv6ToBigInt(s) };
  return undefined;
}

export function isIp(s: string): boolean {
  return parseIp(s) !== undefined;
}

function cidr(s: string): Cidr | string {
  const slash = s.indexOf('/');
  if (slash < 0) return 'missing "/prefix"';
  const ip = parseIp(s.slice(0, slash));
  if (!ip) return 'not an IP address before "/"';
  const prefixText = s.slice(slash + 1);
  const bits = ip.family === 4 ? 32 : 128;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > bits) {
    return `prefix must be 0-${bits}`;
  }
  const prefix = Number(prefixText);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((ip.value & hostMask) !== 0n) {
    return `host bits are set (did you mean ${formatIp(ip.family, ip.value & ~hostMask)}/${prefix}?)`;
  }
  return { family: ip.family, base: ip.value, prefix };
}

/** Parses "network/prefix"; throws NetFormatError when host bits are set or the prefix is out of range. */
export function parseCidr(s: string): Cidr {
  const c = cidr(s);
  if (typeof c === 'string') throw new NetFormatError(c);
  return c;
}

/** Why `s` is not a CIDR, or undefined when it is one. */
export function cidrProblem(s: string): string | undefined {
  const c = cidr(s);
  return typeof c === 'string' ? c : undefined;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const bits = a.family === 4 ? 32 : 128;
  const shift = BigInt(bits - Math.min(a.prefix, b.prefix));
  return a.base >> shift === b.base >> shift;
}

const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** An RFC 1123 label: what a cluster name or a node name the provider makes may be. */
export function isDnsLabel(s: string): boolean {
  return LABEL.test(s);
}

/** An RFC 1123 subdomain, as Kubernetes validates object (node) names: lowercase labels joined by single dots. */
export function isDnsSubdomain(s: string): boolean {
  return s.length > 0 && s.length <= 253 && s.split('.').every((l) => LABEL.test(l));
}

/** A host name: a subdomain whose last label is not all digits (which resolvers would read as an IPv4 address). */
export function isHostName(s: string): boolean {
  const labels = s.split('.');
  return isDnsSubdomain(s) && !/^[0-9]+$/.test(labels[labels.length - 1] ?? '');
}

/** A certificate SAN: an IP address, or a host name with at most a leftmost "*." wildcard label. */
export function isSan(s: string): boolean {
  if (isIp(s)) return true;
  return isHostName(s.startsWith('*.') ? s.slice(2) : s);
}

export function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

function endpoint(text: string, defaultPort: number | undefined): Endpoint | string {
  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]*)\](.*)$/.exec(text);
  if (text.startsWith('[') && !bracketed) return 'missing "]" after the IPv6 address';
  if (bracketed) {
    host = (bracketed[1] as string).toLowerCase();
    const rest = bracketed[2] as string;
    if (parseIp(host)?.family !== 6) return 'expected an IPv6 address inside [ ]';
    if (rest !== '' && !rest.startsWith(':')) return 'expected ":port" after "]"';
    portText = rest === '' ? undefined : rest.slice(1);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon >= 0 && text.indexOf(':') !== colon)
      return 'an IPv6 address needs [ ] around it, e.g. [fd00::1]:9000';
    host = (colon >= 0 ? text.slice(0, colon) : text).toLowerCase();
    portText = colon >= 0 ? text.slice(colon + 1) : undefined;
    if (host === '') return 'empty host';
    if (parseIp(host)?.family !== 4 && !isHostName(host))
      return `"${host.slice(0, 80)}" is neither an IP address nor a host name`;
  }
  if (portText === undefined) {
    if (defaultPort === undefined) return 'missing ":port"';
    return { host, port: defaultPort };
  }
  if (!/^[1-9][0-9]{0,4}$/.test(portText) || Number(portText) > 65535) return 'port must be 1-65535';
  return { host, port: Number(portText) };
}

/**
 * Parses "host:port" or "[v6]:port" (the port may be left out when `defaultPort` is given); the host comes back
 * lowercase. Throws NetFormatError with the reason.
 */
export function parseEndpoint(text: string, defaultPort?: number): Endpoint {
  if (typeof text !== 'string') throw new NetFormatError('expected a string "host:port" or "[v6]:port"');
  const e = endpoint(text, defaultPort);
  if (typeof e === 'string') throw new NetFormatError(e);
  return e;
}

/** Why `text` is not an endpoint, or undefined when it is one. */
export function endpointProblem(text: string, defaultPort?: number): string | undefined {
  const e = endpoint(text, defaultPort);
  return typeof e === 'string' ? e : undefined;
}

/** "host:port", with brackets around an IPv6 address. */
export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}
