// Test harness: loopback TCP ports nothing listens on, for a server a test starts next.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** A port the kernel just handed out on 127.0.0.1 and that was closed again; free until someone binds it. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    // a probe must never keep the test process alive
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (typeof address !== 'object' || !address) {
        server.close(() => reject(new Error('freePort: the probe server has no address')));
        return;
      }
      server.close(() => resolvePort(address.port));
    });
  });
}

/** The first port the kernel hands out for outgoing connections (ip_local_port_range), 32768 when unreadable. */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 2048 ? low : 32768;
  } catch {
    return 32768;
  }
}

/**
 * A random port for an adjacent listener pair (port, port + 1), below the outgoing range: tcti-swtpm opens a
 * connection per command, so a busy machine holds thousands of outgoing ports in TIME_WAIT, which no listener can take.
 */
export function pairPortCandidate(): { port: number; range: string } {
  const top = ephemeralLow() - 2;
  const bottom = Math.max(1024, top - 16_384);
  return { port: bottom + Math.floor(Math.random() * (top - bottom)), range: `${bottom}-${top + 1}` };
}

function isFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const server = createServer();
    server.unref();
    server.once('error', () => res(false));
    server.listen(port, '127.0.0.1', () => server.close(() => res(true)));
  });
}

/** Two adjacent free ports (swtpm's data and control channel), free until someone binds them. */
export async function freePortPair(): Promise<[number, number]> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const { port } = pairPortCandidate();
    if ((await isFree(port)) && (await isFree(port + 1))) return [port, port + 1];
  }
  throw new Error(`freePortPair: no free adjacent pair in ${pairPortCandidate().range}`);
}
