// The one cluster every e2e scenario shares: brought up by `sextant mini up` exactly as the README says (plus
// the e2e's workload image, --preload-image), taken down by `sextant mini down --yes`. Scenarios get this
// handle: the workspace, kubectl with the workspace's admin kubeconfig, the nodes, and the CLI.
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../cli/config/file.js';
import type { SextantConfig } from '../../cli/config/schema.js';
import { type OpenBao, startOpenBao } from '../harness/openbao.js';
import { buildTestImage } from './netcheck-image.js';

export const repo = join(import.meta.dirname, '..', '..');

export type Kubectl = (args: string[], input?: string) => Promise<string>;

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

export interface MiniCluster {
  /** Scratch directory of the run (holds the workspace and whatever scenarios make). */
  work: string;
  /** The workspace mini up ran in. */
  ws: string;
  config: SextantConfig;
  nodes: { name: string; role: 'control-plane' | 'worker'; address: string; consoleLog: string }[];
  kubectl: Kubectl;
  /** `sextant <args> --workspace <dir>` (default the cluster's workspace) from the sources. */
  sextant(args: string[], dir?: string, env?: NodeJS.ProcessEnv): Promise<Ran>;
  /** What mini up printed on stdout (the summary with its phase breakdown). */
  upSummary: string;
  /** The OpenBao on loopback holding the transit key the master secret is wrapped under (mini up --kms). */
  kms: MiniKms;
  /** Stops what the cluster's run started besides the cluster (the KMS); after mini down. */
  close(): Promise<void>;
}

export interface MiniKms {
  bao: OpenBao;
  /** The transit key's name. */
  key: string;
  /** What the operator's shell holds: a token allowed only encrypt and decrypt of `key`. */
  env: NodeJS.ProcessEnv;
}

/** A real OpenBao over TLS on loopback with one transit key and a token for it, as an operator's KMS. */
async function startKms(): Promise<MiniKms> {
  const bao = await startOpenBao({ tls: true });
  try {
    const key = 'sextant-master';
    await bao.createKey(key);
    return { bao, key, env: { BAO_TOKEN: await bao.keyToken(key) } };
  } catch (err) {
    await bao.stop();
    throw err;
  }
}

export function sextantIn(dir: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(repo, 'cli/main.ts'), ...args, '--workspace', dir],
      // from the checkout, where --import tsx resolves; the workspace is named by --workspace
      { cwd: repo, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      process.stdout.write(
        `    ${args.slice(0, 2).join(' ')}: ${c.toString().trimEnd().replace(/\n/g, '\n    ')}\n`,
      );
    });
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/** API errors of a control plane that is slow, not wrong (etcd under TCG): the same request is sent again. */
const TRANSIENT =
  /etcdserver: (request timed out|leader changed)|the server is currently unable to handle the request|TLS handshake timeout|the server was unable to return a response in the time allotted/;

export function kubectlFor(binary: string, kubeconfig: string): Kubectl {
  const once = (args: string[], input?: string) =>
    new Promise<string>((resolve, reject) => {
      const child = execFile(
        binary,
        ['--kubeconfig', kubeconfig, '--request-timeout=60s', ...args],
        { maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) =>
          err ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
      );
      if (input !== undefined) child.stdin?.end(input);
    });
  return async (args, input) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await once(args, input);
      } catch (err) {
        if (attempt >= 5 || !TRANSIENT.test((err as Error).message)) throw err;
        console.log(`    ${(err as Error).message.trim()} (attempt ${attempt} of 5; again in 5 s)`);
        await new Promise((r) => setTimeout(r, 5000));
      }
    }
  };
}

/** Polls `probe` every 5 s until it returns a value; the error names what was awaited and the last failure. */
export async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within ${timeoutMs / 1000} s${last ? ` (last: ${last})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 5000));
  }
}

/** The agent's structured journal lines a node forwarded to its serial console. */
export async function agentJournal(consoleLog: string): Promise<Record<string, string>[]> {
  const text = await readFile(consoleLog, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, string>];
      } catch {
        return []; // a line cut by other console output
      }
    })
    .filter((e) => e.SYSLOG_IDENTIFIER === 'sextant-agent');
}

/**
 * `sextant mini up --kms` in a new, empty directory, its master secret wrapped by a real OpenBao on loopback;
 * resolves once it said every node is Ready.
 */
export async function startMiniCluster(): Promise<MiniCluster> {
  const work = await mkdtemp(join(tmpdir(), 'sextant-e2e-'));
  const ws = join(work, 'cluster');
  await mkdir(ws);
  const image = await buildTestImage(join(tmpdir(), 'sextant-e2e-netcheck'));
  const kms = await startKms();
  const t0 = Date.now();
  const up = await sextantIn(
    ws,
    ['mini', 'up', '--preload-image', image, '--kms', kms.bao.uri(kms.key)],
    kms.env,
  );
  console.log(`mini up: exit ${up.code} after ${((Date.now() - t0) / 1000).toFixed(1)} s\n${up.stdout}`);
  if (up.code !== 0) {
    await kms.bao.stop();
    throw new Error(`sextant mini up failed (exit ${up.code}):\n${up.stderr.slice(-4000)}`);
  }
  const config = await loadConfig(ws);
  await logNodeTimings(ws);
  const cluster = JSON.parse(await readFile(join(ws, 'qemu/cluster.json'), 'utf8')) as {
    nodes: MiniCluster['nodes'];
  };
  return {
    work,
    ws,
    config,
    nodes: cluster.nodes,
    kubectl: kubectlFor(
      join(config.provider.qemu.release as string, 'components/kubectl'),
      join(ws, 'sextant-admin.conf'),
    ),
    sextant: (args, dir = ws, env = {}) => sextantIn(dir, args, env),
    upSummary: up.stdout,
    kms,
    close: () => kms.bao.stop(),
  };
}

/** Where the nodes' time went, from their agents' journals: kubeadm and component installs (the speed work's data). */
async function logNodeTimings(ws: string): Promise<void> {
  const cluster = JSON.parse(await readFile(join(ws, 'qemu/cluster.json'), 'utf8')) as {
    nodes: { name: string; consoleLog: string }[];
  };
  for (const n of cluster.nodes) {
    const journal = await agentJournal(n.consoleLog);
    const timed = journal
      .filter((e) => e.DURATION_MS)
      .map(
        (e) =>
          `${e.MESSAGE}${e.COMMAND ? ` ${e.COMMAND}` : ''} ${(Number(e.DURATION_MS) / 1000).toFixed(1)} s`,
      );
    console.log(`${n.name}: ${timed.join('; ') || 'no timed journal entries on the console'}`);
    // the agent's timeline (journal time stamps, seconds after its first entry), one line per distinct message
    const t0 = Number(journal[0]?.__REALTIME_TIMESTAMP ?? 0);
    const seen = new Set<string>();
    const timeline = journal.flatMap((e) => {
      if (!e.__REALTIME_TIMESTAMP || seen.has(e.MESSAGE ?? '')) return [];
      seen.add(e.MESSAGE ?? '');
      return [`+${((Number(e.__REALTIME_TIMESTAMP) - t0) / 1e6).toFixed(1)} s ${e.MESSAGE}`];
    });
    if (timeline.length > 0) console.log(`${n.name} timeline:\n  ${timeline.join('\n  ')}`);
  }
}

/** Every qemu, swtpm or component server whose command line names `dir`. */
export async function processesOf(dir: string): Promise<string[]> {
  const out = await new Promise<string>((resolve) =>
    execFile('ps', ['-eo', 'pid,args'], { maxBuffer: 8 * 1024 * 1024 }, (_e, stdout) =>
      resolve(stdout ?? ''),
    ),
  );
  return out.split('\n').filter((l) => l.includes(dir) && !l.includes(' ps -eo'));
}
