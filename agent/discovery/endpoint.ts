// A JoinService endpoint and the sources that find them.
import { isIP } from 'node:net';

export interface JoinEndpoint {
  host: string;
  port: number;
  source: 'metadata' | 'mdns' | 'static';
}

export interface EndpointSource {
  readonly name: string;
  discover(signal?: AbortSignal): Promise<JoinEndpoint[]>;
}

// RFC 1123 host names: labels of letters, digits and inner hyphens.
const HOSTNAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/**
 * Parses "host:port" or "[v6]:port" (host a DNS name or IPv4 address). Throws an error naming the entry and what
 * was expected.
 */
export function parseEndpoint(entry: string, source: JoinEndpoint['source']): JoinEndpoint {
  const fail = (why: string): never => {
    throw new Error(`${source} join endpoint ${JSON.stringify(entry)} is invalid: ${why}`);
  };
  if (typeof entry !== 'string') fail('expected a string "host:port" or "[v6]:port"');
  const text = entry.trim();
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) fail('missing "]" after the IPv6 address');
    host = text.slice(1, close);
    if (isIP(host) !== 6) fail(`"${host}" is not an IPv6 address`);
    if (text[close + 1] !== ':') fail('expected ":port" after "]"');
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) fail('missing ":port" (expected "host:port" or "[v6]:port")');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) fail('an IPv6 address must be written in brackets: "[v6]:port"');
    if (host === '') fail('empty host');
    if (/^[0-9.]+$/.test(host) ? isIP(host) !== 4 : !HOSTNAME.test(host)) {
      fail(`"${host}" is neither an IPv4 address nor a host name`);
    }
  }
  if (!/^[0-9]{1,5}$/.test(portText)) fail(`port "${portText}" is not a number`);
  const port = Number(portText);
  if (port < 1 || port > 65535) fail(`port ${port} is outside 1-65535`);
  return { host, port, source };
}

/** "host:port", with brackets for IPv6: the key endpoints are deduplicated by. */
export function endpointKey(endpoint: { host: string; port: number }): string {
  const host = endpoint.host.toLowerCase();
  return isIP(host) === 6 ? `[${host}]:${endpoint.port}` : `${host}:${endpoint.port}`;
}
