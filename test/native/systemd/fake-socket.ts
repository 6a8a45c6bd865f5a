// Test helpers: a unix datagram socket we read (python3, as node has no unix dgram sockets), and a child process
// that sees it as /run/systemd/journal/socket through a private mount namespace.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const READER = new URL('./fixtures/dgram-reader.py', import.meta.url).pathname;

export interface DgramReader {
  dir: string;
  path: string;
  datagrams: Buffer[];
  waitFor(count: number, timeoutMs?: number): Promise<Buffer[]>;
  stop(): Promise<void>;
}

export async function startDgramReader(): Promise<DgramReader> {
  const dir = mkdtempSync(join(tmpdir(), 'sextant-dgram-'));
  const path = join(dir, 'socket');
  const child: ChildProcess = spawn('python3', [READER, path], { stdio: ['pipe', 'pipe', 'pipe'] });
  const datagrams: Buffer[] = [];
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  let buffered = '';
  let onLine: (() => void) | undefined;
  await new Promise<void>((resolve, reject) => {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      buffered += d;
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line === 'READY') resolve();
        else datagrams.push(Buffer.from(line, 'base64'));
        onLine?.();
        nl = buffered.indexOf('\n');
      }
    });
    child.once('error', reject);
    void exited.then(() => reject(new Error(`dgram reader exited early: ${stderr}`)));
  });
  return {
    dir,
    path,
    datagrams,
    async waitFor(count, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (datagrams.length < count) {
        if (Date.now() > deadline) {
          throw new Error(`expected ${count} datagrams, got ${datagrams.length} within ${timeoutMs} ms`);
        }
        await new Promise<void>((r) => {
          onLine = r;
          setTimeout(r, 50);
        });
      }
      return datagrams.slice(0, count);
    },
    async stop() {
      child.stdin?.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Parses one native-protocol journal datagram into its fields (both "K=v\n" and the binary "K\n<len64>v\n"). */
export function parseJournalDatagram(data: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let at = 0;
  while (at < data.length) {
    const nl = data.indexOf(0x0a, at);
    const eq = data.indexOf(0x3d, at);
    if (nl < 0) throw new Error(`journal datagram: unterminated field at byte ${at}`);
    if (eq >= 0 && eq < nl) {
      fields[data.toString('utf8', at, eq)] = data.toString('utf8', eq + 1, nl);
      at = nl + 1;
    } else {
      const key = data.toString('utf8', at, nl);
      const len = Number(data.readBigUInt64LE(nl + 1));
      const start = nl + 9;
      fields[key] = data.toString('utf8', start, start + len);
      at = start + len + 1;
    }
  }
  return fields;
}

export interface ChildResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/**
 * Runs `node --import tsx <script> ...args` in a private mount namespace where /run is a fresh tmpfs and
 * /run/systemd/journal is the reader's directory, so libsystemd's journal socket is our reader.
 */
export function runWithFakeJournal(
  reader: DgramReader,
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<ChildResult> {
  const shell = [
    'set -e',
    'mount -t tmpfs sextant-test /run',
    'mkdir -p /run/systemd/journal',
    'mount --bind "$0" /run/systemd/journal',
    'exec "$@"',
  ].join('\n');
  const argv = ['-m', '--propagation', 'private', 'sh', '-c', shell, reader.dir];
  argv.push(process.execPath, '--import', 'tsx', script, ...args);
  return new Promise((resolve) => {
    execFile(
      'unshare',
      argv,
      { env: { ...process.env, ...env }, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? Number((err as { code?: number }).code ?? 1) : 0;
        resolve({ stdout, stderr, exitCode: Number.isFinite(code) ? code : 1 });
      },
    );
  });
}

/** Mount namespaces need root (CAP_SYS_ADMIN); tests using them skip with this reason otherwise. */
export const fakeJournalSkip: string | false =
  process.getuid?.() === 0 ? false : 'needs root for a private mount namespace (unshare -m)';
