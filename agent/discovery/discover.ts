import type { Logger } from '../log/index.js';
import { type EndpointSource, endpointKey, type JoinEndpoint } from './endpoint.js';

/**
 * Asks every source at once; a source that fails is logged with its reason and never stops the others.
 * Endpoints are deduplicated by host:port, the first source in `sources` order keeping its entry.
 * Rejects with the signal's reason only when the signal aborts.
 */
export async function discoverAll(
  sources: readonly EndpointSource[],
  log: Logger,
  signal?: AbortSignal,
): Promise<JoinEndpoint[]> {
  signal?.throwIfAborted();
  const settled = Promise.allSettled(
    sources.map((source) => Promise.resolve().then(() => source.discover(signal))),
  );
  const results = signal === undefined ? await settled : await untilAborted(settled, signal);
  signal?.throwIfAborted();
  const seen = new Set<string>();
  const endpoints: JoinEndpoint[] = [];
  results.forEach((result, i) => {
    const name = sources[i]?.name ?? `source ${i}`;
    if (result.status === 'rejected') {
      const reason = result.reason instanceof Error ? result.reason.message : String(result.reason);
      log.warn('join endpoint source failed', { source: name, reason });
      return;
    }
    log.debug('join endpoint source answered', { source: name, endpoints: result.value.length });
    for (const endpoint of result.value) {
      const key = endpointKey(endpoint);
      if (seen.has(key)) continue;
      seen.add(key);
      endpoints.push(endpoint);
    }
  });
  if (endpoints.length === 0)
    log.info('no join endpoint found', { sources: sources.map((s) => s.name).join(',') });
  return endpoints;
}

/** A source that ignores the signal must not keep the caller waiting once it aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
