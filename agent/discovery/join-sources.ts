import type { EndpointSource } from './endpoint.js';
import { mdnsSource } from './mdns.js';
import { metadataSource } from './metadata.js';
import { staticSource } from './static.js';

export interface JoinSourceOptions {
  /** Reads the instance metadata; called on every discovery, never cached, so new control planes are found. */
  metadata: () => Promise<{ joinEndpoints?: string[] }>;
  staticEndpoints: readonly string[];
  mdns: boolean;
}

/** Where a node looks for JoinServices, in order of preference: metadata, then the static list, then mDNS. */
export function joinServiceSources(options: JoinSourceOptions): EndpointSource[] {
  const sources: EndpointSource[] = [metadataSource(options.metadata)];
  if (options.staticEndpoints.length > 0) sources.push(staticSource(options.staticEndpoints));
  if (options.mdns) sources.push(mdnsSource());
  return sources;
}
