// Test harness: a loopback TCP port nothing listens on, for a server a test starts next.
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
