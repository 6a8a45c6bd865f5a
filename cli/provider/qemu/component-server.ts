// The release's components over HTTP to the VMs: a detached process `create` starts on the host's address on the
// VMs' subnet and `terminate` stops; the nodes check every byte against the SHA-256 in their component list.
import { spawn } from 'node:child_process';
import { createReadStream, openSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { dirname, extname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ComponentServerOptions {
  /** The flat directory served: GET /<name> answers <root>/<name>, nothing else. */
  root: string;
  host: string;
  port: number;
  pidFile: string;
  logFile: string;
}

/** Serves `root`; one log line per request (name, bytes, milliseconds) to stdout. */
export function serveComponents(root: string, host: string, port: number): Promise<void> {
  const names = new Set(readdirSync(root));
  const server = createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? '/').slice(1));
    const t0 = Date.now();
    if (req.method !== 'GET' || !names.has(name)) {
      res.statusCode = 404;
      res.end();
      return;
    }
    const file = join(root, name);
    res.setHeader('content-length', String(statSync(file).size));
    res.on('finish', () => {
      process.stdout.write(
        `${new Date().toISOString()} ${req.socket.remoteAddress} ${name} ${statSync(file).size} bytes ${Date.now() - t0} ms\n`,
      );
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** Starts the server as a detached process (same runtime and loader as this one); resolves once it accepts. */
export async function startComponentServer(o: ComponentServerOptions): Promise<number> {
  const script = fileURLToPath(new URL(`./component-server${extname(import.meta.url)}`, import.meta.url));
  const log = openSync(o.logFile, 'a');
  const child = spawn(
    process.execPath,
    [...process.execArgv, script, resolvePath(o.root), o.host, String(o.port), resolvePath(o.pidFile)],
    // run from the script's own folder: a loader named in execArgv (--import tsx) resolves from there, not the workspace
    { detached: true, cwd: dirname(script), stdio: ['ignore', log, log] },
  );
  if (child.pid === undefined) throw new Error(`component server: could not start ${process.execPath}`);
  writeFileSync(o.pidFile, `${child.pid}\n`);
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? 1));
  child.unref();
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (exited !== null)
      throw new Error(`component server exited (code ${exited}) before listening; see ${o.logFile}`);
    if (await accepts(o.host, o.port)) return child.pid;
    await sleep(100);
  }
  throw new Error(`component server: not listening on ${o.host}:${o.port} within 30 s; see ${o.logFile}`);
}

// Run as a process: component-server <root> <host> <port> <pidFile> (the pid file is in argv so terminate can tell
// this process from a recycled pid: its command line names the workspace's provider directory).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [root, host, port] = process.argv.slice(2);
  if (!root || !host || !port) {
    process.stderr.write('usage: component-server <root> <host> <port> <pidFile>\n');
    process.exit(2);
  }
  await serveComponents(root, host, Number(port));
  process.stdout.write(`${new Date().toISOString()} serving ${root} on ${host}:${port}\n`);
}
