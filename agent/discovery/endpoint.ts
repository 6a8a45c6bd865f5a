// A JoinService endpoint and the sources that find them.
import { type Endpoint, formatEndpoint, parseEndpoint } from '../../common/net.js';

export interface JoinEndpoint extends Endpoint {
  source: 'metadata' | 'mdns' | 'static';
}

export interface EndpointSource {
  readonly name: string;
  discover(signal?: AbortSignal): Promise<JoinEndpoint[]>;
}

/** Parses one configured "host:port" or "[v6]:port"; the error names the source, the entry and the reason. */
export function parseJoinEndpoint(entry: string, source: JoinEndpoint['source']): JoinEndpoint {
  try {
    return { ...parseEndpoint(typeof entry === 'string' ? entry.trim() : entry), source };
  } catch (err) {
    throw new Error(`${source} join endpoint ${JSON.stringify(entry)} is invalid: ${(err as Error).message}`);
  }
}

/** "host:port" with a lowercase host, brackets for IPv6: the key endpoints are deduplicated by. */
export function endpointKey(endpoint: Endpoint): string {
  return formatEndpoint({ host: endpoint.host.toLowerCase(), port: endpoint.port });
}
