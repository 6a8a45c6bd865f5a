// Address, CIDR and DNS-name checks for the config. Kept strict so that a value the CLI accepts is one kubeadm and
// the agent accept too: no host bits in a CIDR, no bare labels with underscores, no zone IDs.
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

function ipv4ToBigInt(s: string): bigint {
  return s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function ipv6ToBigInt(s: string): bigint {
  let text = s;
  // a dotted IPv4 tail (::ffff:10.0.0.1) becomes two hex groups
  const tail = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const v4 = ipv4ToBigInt(tail[2]!);
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

/** An IPv4 or IPv6 address (no zone ID), or undefined. */
export function parseIp(s: string): IpAddress | undefined {
  if (isIPv4(s)) {
    // node accepts only canonical dotted quads, but leading zeros are ambiguous (octal to some tools)
    if (s.split('.').some((p) => p.length > 1 && p.startsWith('0'))) return undefined;
    return { family: 4, value: ipv4ToBigInt(s) };
  }
  if (isIPv6(s) && !s.includes('%')) return { family: 6, value: ipv6ToBigInt(s) };
  return undefined;
}

/** Parses "addr/prefix"; returns a reason string when it is not a network address with a valid prefix. */
export function parseCidr(s: string): Cidr | string {
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
  if ((ip.value & hostMask) !== 0n) return 'host bits are set (use the network address)';
  return { family: ip.family, base: ip.value, prefix };
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const bits = a.family === 4 ? 32 : 128;
  const prefix = Math.min(a.prefix, b.prefix);
  const shift = BigInt(bits - prefix);
  return a.base >> shift === b.base >> shift;
}

const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** An RFC 1123 label: what a Kubernetes object or node name may be. */
export function isDnsLabel(s: string): boolean {
  return LABEL.test(s);
}

/** A DNS name of RFC 1123 labels, optionally starting with one "*." wildcard label (as certificate SANs allow). */
export function isDnsName(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  const name = s.startsWith('*.') ? s.slice(2) : s;
  const labels = name.split('.');
  // an all-numeric last label would be read as an IPv4 address by some resolvers
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) return false;
  return labels.every((l) => LABEL.test(l));
}

export interface HostPort {
  host: string;
  port: number;
}

/** "host:port", "[v6]:port"; host is an IP address or DNS name. Returns a reason string when invalid. */
export function parseEndpoint(s: string, defaultPort?: number): HostPort | string {
  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(s);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
    if (parseIp(host)?.family !== 6) return 'expected an IPv6 address inside [ ]';
  } else {
    const colon = s.lastIndexOf(':');
    if (colon >= 0 && s.indexOf(':') !== colon)
      return 'an IPv6 address needs [ ] around it, e.g. [fd00::1]:9000';
    host = colon >= 0 ? s.slice(0, colon) : s;
    portText = colon >= 0 ? s.slice(colon + 1) : undefined;
    if (!parseIp(host) && !isDnsName(host)) return 'expected an IP address or DNS name before ":"';
  }
  if (portText === undefined) {
    if (defaultPort === undefined) return 'missing ":port"';
    return { host, port: defaultPort };
  }
  if (!/^[1-9][0-9]{0,4}$/.test(portText) || Number(portText) > 65535) return 'port must be 1-65535';
  return { host, port: Number(portText) };
}

export function formatEndpoint(e: HostPort): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}
