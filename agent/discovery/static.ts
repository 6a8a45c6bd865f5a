import { type EndpointSource, type JoinEndpoint, parseJoinEndpoint } from './endpoint.js';

/** Endpoints from the node configuration; every entry is checked here, so a typo fails at startup. */
export function staticSource(list: readonly string[]): EndpointSource {
  if (!Array.isArray(list)) throw new Error('static join endpoints must be a list of "host:port" strings');
  const endpoints: JoinEndpoint[] = list.map((entry) => parseJoinEndpoint(entry, 'static'));
  return {
    name: 'static',
    async discover(signal?: AbortSignal) {
      signal?.throwIfAborted();
      return endpoints.map((e) => ({ ...e }));
    },
  };
}
