import { type EndpointSource, parseJoinEndpoint } from './endpoint.js';

/**
 * Endpoints from instance metadata, read anew on every discovery (the list changes as control-plane nodes come
 * and go). A malformed entry fails the source with the entry named, rather than being dropped unnoticed.
 */
export function metadataSource(load: () => Promise<{ joinEndpoints?: string[] }>): EndpointSource {
  return {
    name: 'metadata',
    async discover(signal?: AbortSignal) {
      signal?.throwIfAborted();
      const metadata = await load();
      signal?.throwIfAborted();
      const list = metadata?.joinEndpoints ?? [];
      if (!Array.isArray(list))
        throw new Error('instance metadata joinEndpoints must be a list of "host:port"');
      return list.map((entry) => parseJoinEndpoint(entry, 'metadata'));
    },
  };
}
