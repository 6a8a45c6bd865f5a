import { isIP, isIPv4 } from 'node:net';

export interface Cidr {
  family: 4 | 6;
  base: bigint;
  prefix: number;
}

function ipToBig(ip: string): bigint {
  if (isIPv4(ip)) return ip.split('.').reduce((acc, o) => (acc << 8n) + BigInt(Number(o)), 0n);
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  // embedded IPv4 in the last group
  const expand = (groups: string[]) =>
    groups.flatMap((g) => {
      if (g.includes('.')) {
        const v = ipToBig(g);
        return [((v >> 16n) & 0xffffn).toString(16), (v & 0xffffn).toString(16)];
      }
      return [g];
    });
  const hh = expand(h);
  const tt = expand(t);
  const groups = tail === undefined ? hh : [...hh, ...Array(8 - hh.length - tt.length).fill('0'), ...tt];
  return groups.reduce((acc, g) => (acc << 16n) + BigInt(Number.parseInt(g || '0', 16)), 0n);
}

function bigToIp(v: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => ((v >> s) & 0xffn).toString()).join('.');
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((v >> BigInt(i * 16)) & 0xffffn).toString(16));
  // Canonical form: compress the longest run of zero groups.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export function parseCidr(s: string): Cidr | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s.trim());
  if (!m) return undefined;
  const fam = isIP(m[1]!);
  if (fam !== 4 && fam !== 6) return undefined;
  const prefix = Number(m[2]);
  const bits = fam === 4 ? 32 : 128;
  if (prefix > bits) return undefined;
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
  return { family: fam, base: ipToBig(m[1]!) & mask, prefix };
}

/** The n-th address of a subnet (1 = the API server's service IP, 10 = cluster DNS). */
export function nthIp(c: Cidr, n: number): string {
  return bigToIp(c.base + BigInt(n), c.family);
}

export const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isDnsSubdomain(s: string): boolean {
  return s.length > 0 && s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}

export function isWildcardDns(s: string): boolean {
  return s.startsWith('*.') && isDnsSubdomain(s.slice(2));
}

/** Splits "host:port" / "[v6]:port" / "host"; port undefined when absent. */
export function splitHostPort(s: string): { host: string; port?: number; portText?: string } {
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(s);
  if (v6) return { host: v6[1]!, port: v6[2] === undefined ? undefined : Number(v6[2]), portText: v6[2] };
  if (isIP(s) === 6) return { host: s };
  const i = s.lastIndexOf(':');
  if (i < 0) return { host: s };
  const portText = s.slice(i + 1);
  return { host: s.slice(0, i), port: Number(portText), portText };
}

export function joinHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

export function validPort(p: number | undefined): boolean {
  return p !== undefined && Number.isInteger(p) && p >= 1 && p <= 65535;
}
