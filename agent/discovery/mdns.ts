// JoinService discovery on the local link: control-plane nodes advertise _sextant-join._tcp, joining nodes
// browse for it. Only IPv4 addresses are returned (the cluster network is IPv4 here).
import { isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';
import Bonjour from 'bonjour-service';
import { type EndpointSource, endpointKey, type JoinEndpoint } from './endpoint.js';

export const JOIN_SERVICE_TYPE = 'sextant-join';
export const DEFAULT_MDNS_TIMEOUT_MS = 1500;

type BonjourInstance = InstanceType<typeof Bonjour>;

/** multicast-dns wants the interface's IPv4 address; accept an interface name too. */
function interfaceAddress(iface: string): string {
  if (isIPv4(iface)) return iface;
  const addr = networkInterfaces()[iface]?.find((a) => a.family === 'IPv4');
  if (!addr) throw new Error(`mDNS interface "${iface}" has no IPv4 address (or does not exist)`);
  return addr.address;
}

function openBonjour(iface: string | undefined, onError: (err: Error) => void): BonjourInstance {
  // Binding to the interface's unicast address would filter out multicast, so bind the wildcard and only pin
  // the multicast membership and outgoing interface.
  const opts = iface === undefined ? {} : { interface: interfaceAddress(iface), bind: '0.0.0.0' };
  const bonjour = new Bonjour(opts as ConstructorParameters<typeof Bonjour>[0], onError);
  // multicast-dns emits 'error' for socket failures (e.g. no multicast route); unhandled it would crash.
  const mdns = (bonjour as unknown as { server?: { mdns?: NodeJS.EventEmitter } }).server?.mdns;
  mdns?.on('error', onError);
  mdns?.on('warning', () => {});
  return bonjour;
}

function destroy(bonjour: BonjourInstance): Promise<void> {
  return new Promise((resolve) => {
    try {
      bonjour.destroy(() => resolve());
    } catch {
      resolve();
    }
  });
}

/** Browses _sextant-join._tcp for timeoutMs and returns every IPv4 address:port announced meanwhile. */
export function mdnsSource(options: { timeoutMs?: number; interface?: string } = {}): EndpointSource {
  const timeoutMs = options.timeoutMs ?? DEFAULT_MDNS_TIMEOUT_MS;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new Error(`mDNS timeoutMs must be a positive number, got ${timeoutMs}`);
  }
  return {
    name: 'mdns',
    discover(signal?: AbortSignal) {
      return new Promise<JoinEndpoint[]>((resolve, reject) => {
        if (signal?.aborted) {
          reject(signal.reason);
          return;
        }
        let failure: Error | undefined;
        let bonjour: BonjourInstance;
        try {
          bonjour = openBonjour(options.interface, (err) => {
            failure ??= err;
          });
        } catch (err) {
          reject(err);
          return;
        }
        const found = new Map<string, JoinEndpoint>();
        const browser = bonjour.find({ type: JOIN_SERVICE_TYPE, protocol: 'tcp' }, (service) => {
          const addresses = (service.addresses ?? []).filter((a) => isIPv4(a));
          // Some responders send no A record with the SRV; the packet's source address is the node then.
          if (addresses.length === 0 && service.referer?.family === 'IPv4')
            addresses.push(service.referer.address);
          for (const host of addresses) {
            found.set(endpointKey({ host, port: service.port }), {
              host,
              port: service.port,
              source: 'mdns',
            });
          }
        });
        const finish = (error?: unknown) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          browser.stop();
          void destroy(bonjour).then(() => {
            if (error !== undefined) reject(error);
            else if (failure && found.size === 0) reject(new Error(`mDNS browse failed: ${failure.message}`));
            else resolve([...found.values()]);
          });
        };
        const onAbort = () => finish(signal?.reason);
        const timer = setTimeout(() => finish(), timeoutMs);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
  };
}

export interface JoinServiceAdvertisement {
  /** Resolves once the first announcement went out. */
  readonly ready: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Announces this node's JoinService as `<name>._sextant-join._tcp.local` until stop(). `name` must be unique on
 * the link (e.g. derived from the node's address or ID): bonjour-service drops a name already in use.
 */
export function advertiseJoinService(options: {
  name: string;
  port: number;
  txt?: Record<string, string>;
  interface?: string;
}): JoinServiceAdvertisement {
  const { name, port } = options;
  if (typeof name !== 'string' || name.length === 0 || name.length > 63) {
    throw new Error(`mDNS service name must be 1-63 characters, got ${JSON.stringify(name)}`);
  }
  if (!(Number.isInteger(port) && port >= 1 && port <= 65535)) {
    throw new Error(`mDNS service port must be an integer in 1-65535, got ${port}`);
  }
  const bonjour = openBonjour(options.interface, () => {
    // Announcement failures are retried by bonjour-service's re-announce schedule; nothing to do here.
  });
  // The SRV target is a host name of our own, so nodes sharing a kernel host name (namespaces) do not collide.
  const host = `${name.replace(/[^A-Za-z0-9-]/g, '-')}.local`;
  const service = bonjour.publish({
    name,
    type: JOIN_SERVICE_TYPE,
    protocol: 'tcp',
    port,
    host,
    disableIPv6: true,
    ...(options.txt ? { txt: options.txt } : {}),
  });
  const ready = new Promise<void>((resolve) => service.once('up', () => resolve()));
  let stopped: Promise<void> | undefined;
  return {
    ready,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        // Goodbye packets (TTL 0) first, so browsers drop the endpoint at once.
        bonjour.unpublishAll(() => resolve());
      }).then(() => destroy(bonjour));
      return stopped;
    },
  };
}
