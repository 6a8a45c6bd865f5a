// @tier system: swtpm (agents on loopback)
// kubeadm in this test is the stand-in (test/kubeadm): real PKI, config decoding and preflight, its own API server; no kubelet, no control-plane Pods.
// The sextant CLI as an operator runs it: argument handling, every usage error, the workspace it writes, and
// init/verify against a real agent with its own swtpm.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { NodeStateStore } from '../../agent/state/node-state.js';
import { signMeasurements } from '../../attestation/measurements.js';
import type { Backends, CreateSpec } from '../../cli/commands/backends.js';
import { loadState } from '../../cli/workspace/state.js';
import { type AgentNode, startAgentNode } from '../harness/agent-node.js';
import { type CliRun, runCliInProcess } from '../harness/cli.js';
import { swtpmMeasurements } from '../harness/cluster-kit.js';
import { createSwtpmCa, removeSwtpmCa, type SwtpmCa } from '../harness/swtpm.js';
import { writeLocalWorkspace } from '../harness/workspace.js';

const run = promisify(execFile);

const sextant = (args: string[], backends?: Backends): Promise<CliRun> =>
  runCliInProcess(args, backends ? { backends } : {});

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

async function workspace(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'sextant-cli-'));
}

describe('sextant: arguments', () => {
  it('prints the command list with no arguments (exit 2) and with --help (exit 0)', async () => {
    const none = await sextant([]);
    assert.equal(none.code, 2);
    for (const c of ['config generate', 'create', 'init', 'verify', 'terminate', 'version']) {
      assert.match(none.stdout, new RegExp(`\\n  ${c} `));
    }
    assert.equal((await sextant(['--help'])).code, 0);
    const help = await sextant(['init', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /usage: sextant init \[--force\]/);
  });

  it('names what is wrong with a command line and exits 2', async () => {
    const cases: [string[], RegExp][] = [
      [['launch'], /unknown command "launch"/],
      [['init', '--bogus'], /sextant init: unknown option '--bogus'/],
      [['config'], /usage: sextant config <command>/],
      [['mini', 'up', '--workers', 'x'], /--workers: expected a whole number from 0 to 99, got "x"/],
      [['version', 'extra'], /unexpected argument "extra"/],
      [['config', 'generate'], /missing provider \(one of: qemu\)/],
      [['config', 'generate', 'aws'], /unknown provider "aws"/],
      [['verify', '--endpoint', 'a:b:c'], /--endpoint/],
      [['init', '--timeout=-3'], /--timeout: expected a positive number of seconds/],
      [['init', '--timeout', 'soon'], /--timeout: expected a positive number of seconds, got "soon"/],
    ];
    for (const [args, message] of cases) {
      const r = await sextant(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, message, args.join(' '));
    }
  });

  it('help <command>, --version, completion and --debug work as operators expect', async () => {
    const help = await sextant(['help', 'mini', 'up']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^usage: sextant mini up \[--control-planes N\]/);
    const version = await sextant(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^sextant \d+\.\d+\.\d+\n$/);
    const completion = await sextant(['completion', 'bash']);
    assert.equal(completion.code, 0);
    assert.match(completion.stdout, /complete -F _sextant sextant/);
    assert.match(completion.stdout, /"mini up"\) flags="--control-planes --workers/);
    const dir = await workspace();
    try {
      const plain = await sextant(['create', '--workspace', dir]);
      assert.equal(plain.code, 1);
      assert.doesNotMatch(plain.stderr, /\n\s+at /, 'no stack without --debug');
      const debug = await sextant(['create', '--debug', '--workspace', dir]);
      assert.equal(debug.code, 1);
      assert.match(debug.stderr, /sextant create: sextant-conf\.yaml: not found[\s\S]*\n\s+at /);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('finds the command after --workspace DIR and prints its version', async () => {
    const dir = await workspace();
    try {
      const r = await sextant(['--workspace', dir, 'version']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /^sextant \d+\.\d+\.\d+\nnode v20/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('sextant: config and workspace', () => {
  it('config generate qemu writes a valid config once; --force overwrites', async () => {
    const dir = await workspace();
    try {
      const first = await sextant(['config', 'generate', 'qemu', '--workspace', dir]);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stderr, /no measurements yet/);
      const again = await sextant(['config', 'generate', 'qemu', '--workspace', dir]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already exists; use --force/);
      // an image's measurements: signed by its release key, published beside it
      const m = join(dir, 'm.json');
      const mBytes = Buffer.from(
        JSON.stringify({ version: 'img-1', serial: 1, measurements: swtpmMeasurements() }),
      );
      const release = generateKeyPairSync('ed25519');
      await writeFile(m, mBytes);
      await writeFile(`${m}.sig`, signMeasurements(mBytes, release.privateKey));
      await writeFile(
        join(dir, 'measurements.pub.pem'),
        release.publicKey.export({ type: 'spki', format: 'pem' }),
      );
      const forced = await sextant([
        'config',
        'generate',
        'qemu',
        '--force',
        '--measurements',
        m,
        '--workspace',
        dir,
      ]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(await readFile(join(dir, 'sextant-conf.yaml'), 'utf8'), /measurementsPublicKey:/);
      const missing = await sextant([
        'config',
        'generate',
        'qemu',
        '--force',
        '--measurements',
        join(dir, 'nope.json'),
        '--workspace',
        dir,
      ]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /--measurements: cannot read .*nope\.json \(ENOENT\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('init refuses a bad config, names the key, and writes nothing', async () => {
    const dir = await workspace();
    try {
      await writeFile(join(dir, 'sextant-conf.yaml'), 'version: v1\nname: Not_A_Label\n');
      const r = await sextant(['init', '--endpoint', '127.0.0.1:9', '--workspace', dir]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /sextant-conf\.yaml/);
      assert.ok(!existsSync(join(dir, 'sextant-mastersecret.json')), 'no master secret written');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  /** A workspace written for harness nodes (config, EK CA, measurements, init secret), removed afterwards. */
  async function inLocalWorkspace(body: (dir: string) => Promise<void>): Promise<void> {
    const dir = await workspace();
    const ca = await createSwtpmCa();
    try {
      await writeLocalWorkspace(dir, { ca });
      await body(dir);
    } finally {
      removeSwtpmCa(ca);
      await rm(dir, { recursive: true, force: true });
    }
  }

  it('init without the workspace init secret says which file is missing', () =>
    inLocalWorkspace(async (dir) => {
      await rm(join(dir, 'sextant-initsecret.json'));
      const r = await sextant(['init', '--endpoint', '127.0.0.1:9', '--workspace', dir]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /sextant-initsecret\.json missing/);
      assert.ok(!existsSync(join(dir, 'sextant-mastersecret.json')));
    }));

  it('verify without --endpoint attests the first control plane the provider created, or points at create', () =>
    inLocalWorkspace(async (dir) => {
      const none = await sextant(['verify', '--workspace', dir]);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /not verified: no nodes in this workspace .*run "sextant create" first/);
      await mkdir(join(dir, 'qemu'), { recursive: true });
      const nodes = [
        { name: 'worker-0', role: 'worker', address: '127.0.0.3' },
        { name: 'cp-0', role: 'control-plane', address: '127.0.0.2' },
      ];
      await writeFile(join(dir, 'qemu', 'cluster.json'), JSON.stringify({ nodes }));
      // nothing listens there: the failure names the endpoint verify chose
      const chosen = await sextant(['verify', '--workspace', dir]);
      assert.equal(chosen.code, 1);
      assert.match(chosen.stderr, /not verified: .*127\.0\.0\.2:\d+/);
    }));

  it('init without --endpoint and without created nodes points at create', () =>
    inLocalWorkspace(async (dir) => {
      const r = await sextant(['init', '--workspace', dir]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /run "sextant create" first, or pass --endpoint/);
    }));

  it('create hands the provider the init-secret hash and the configured nodes; terminate asks it to clean up', async () => {
    const dir = await workspace();
    const calls: string[] = [];
    let spec: CreateSpec | undefined;
    const backends: Backends = {
      runInit: async () => 0,
      runVerify: async () => 0,
      statusProbes: async () => assert.fail('status is not run here'),
      provider: async () => ({
        async createNodes(ws, s) {
          spec = s;
          calls.push('create');
          await mkdir(join(ws, 'qemu'));
          return { nodes: s.nodes.map((n, i) => ({ ...n, address: `10.0.0.${i + 2}` })) };
        },
        async terminateNodes(ws) {
          calls.push(`terminate ${ws}`);
        },
      }),
    };
    try {
      assert.equal((await sextant(['config', 'generate', 'qemu', '--workspace', dir])).code, 0);
      const created = await sextant(['create', '--workspace', dir], backends);
      assert.equal(created.code, 0, created.stderr);
      assert.equal(
        created.stdout,
        'sextant-cp-0\tcontrol-plane\t10.0.0.2\nsextant-worker-0\tworker\t10.0.0.3\n',
      );
      assert.equal(await mode(join(dir, 'sextant-initsecret.json')), 0o600);
      const secret = JSON.parse(await readFile(join(dir, 'sextant-initsecret.json'), 'utf8')) as {
        secret: string;
      };
      const { createHash } = await import('node:crypto');
      assert.equal(
        spec?.initSecretHash,
        createHash('sha256').update(Buffer.from(secret.secret, 'base64')).digest('hex'),
      );
      // the first inventory this workspace signs; every later create signs a higher one
      assert.equal(spec?.inventorySerial, 1);
      // with no terminal to ask on, terminate refuses unless --yes; in a directory that is no workspace, always
      const asked = await sextant(['terminate', '--workspace', dir], backends);
      assert.equal(asked.code, 2);
      assert.match(asked.stderr, /stdin is not a terminal: pass --yes/);
      const elsewhere = await workspace();
      const notWs = await sextant(['terminate', '--yes', '--workspace', elsewhere], backends);
      await rm(elsewhere, { recursive: true, force: true });
      assert.equal(notWs.code, 1);
      assert.match(notWs.stderr, /is not a Sextant workspace .*nothing stopped/);
      const stopped = await sextant(['terminate', '--yes', '--workspace', dir], backends);
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.match(stopped.stderr, /stopped 0 VM\(s\) \(of 0 created\)/);
      assert.deepEqual(calls, ['create', `terminate ${dir}`]);
      await rm(join(dir, 'qemu'), { recursive: true, force: true });
      const again = await sextant(['create', '--workspace', dir], backends);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(spec?.inventorySerial, 2, 're-signing takes the next serial');
      await rm(join(dir, 'qemu'), { recursive: true, force: true });
      // A provider failure is one line naming it, exit 1.
      const failing: Backends = {
        ...backends,
        provider: async () => ({
          createNodes: async () => {
            throw new Error('node sextant-cp-0: qemu exited; console log /x/console.log');
          },
          terminateNodes: async () => {},
        }),
      };
      const bad = await sextant(['create', '--workspace', dir], failing);
      assert.equal(bad.code, 1);
      assert.equal(
        bad.stderr,
        'sextant create: node sextant-cp-0: qemu exited; console log /x/console.log\n',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('sextant init and verify against an agent with its own swtpm', { timeout: 180_000 }, () => {
  let ca: SwtpmCa;
  before(async () => {
    ca = await createSwtpmCa();
  });
  after(() => removeSwtpmCa(ca));

  it('refuses a node whose PCRs differ from the config, sends nothing, and the node stays uninitialized', async () => {
    const dir = await workspace();
    const measurements = swtpmMeasurements({ 4: { expected: 'ab'.repeat(32), warnOnly: false } });
    const ws = await writeLocalWorkspace(dir, { ca, measurements });
    const node = await startAgentNode({ ca, initSecret: ws.initSecret });
    try {
      const r = await sextant(['init', '--endpoint', `127.0.0.1:${node.initPort}`, '--workspace', dir]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /nothing was sent: .*PCR 4: expected abab/);
      assert.equal(await new NodeStateStore(node.stateDir).load(), null, 'node untouched');
      assert.ok(
        !existsSync(join(dir, 'sextant-mastersecret.json')),
        'no master secret made for a refused node',
      );
      assert.ok(!existsSync(join(dir, 'sextant-admin.conf')));
      assert.ok(!existsSync(join(dir, 'sextant-state.yaml')));
      const verify = await sextant([
        'verify',
        '--endpoint',
        `127.0.0.1:${node.initPort}`,
        '--workspace',
        dir,
      ]);
      assert.equal(verify.code, 1);
      assert.match(verify.stderr, /not verified: .*PCR 4/);
    } finally {
      await node.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives up on an unreachable node within --timeout', async () => {
    const dir = await workspace();
    await writeLocalWorkspace(dir, { ca });
    try {
      const r = await sextant(['init', '--endpoint', '127.0.0.1:1', '--timeout', '2', '--workspace', dir]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /nothing was sent: 127\.0\.0\.1:1: connect/);
      assert.ok(!existsSync(join(dir, 'sextant-mastersecret.json')));
      assert.ok(!existsSync(join(dir, 'sextant-state.yaml')));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('inits the node: 0600 secrets, admin kubeconfig kubectl reads, state with the cluster ID the node extended', async () => {
    const dir = await workspace();
    const ws = await writeLocalWorkspace(dir, { ca });
    const node: AgentNode = await startAgentNode({ ca, initSecret: ws.initSecret });
    try {
      const r = await sextant(['init', '--endpoint', `127.0.0.1:${node.initPort}`, '--workspace', dir]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /node: running kubeadm init/);
      for (const f of ['sextant-mastersecret.json', 'sextant-admin.conf', 'sextant-initsecret.json']) {
        assert.equal(await mode(join(dir, f)), 0o600, f);
      }
      const { stdout } = await run('kubectl', [
        'config',
        'view',
        '--kubeconfig',
        join(dir, 'sextant-admin.conf'),
        '-o',
        'json',
      ]);
      const kubeconfig = JSON.parse(stdout) as { clusters: { cluster: { server: string } }[] };
      assert.equal(kubeconfig.clusters[0]?.cluster.server, `https://127.0.0.1:${node.apiServerPort}`);
      const state = await loadState(dir);
      assert.ok(state);
      assert.match(r.stdout, new RegExp(`cluster ID: ${state.clusterId.toString('hex')}`));
      assert.equal(
        (await new NodeStateStore(node.stateDir).load())?.clusterId,
        state.clusterId.toString('hex'),
      );
      // The secret never reaches the terminal.
      const master = JSON.parse(await readFile(join(dir, 'sextant-mastersecret.json'), 'utf8')) as {
        key: string;
      };
      assert.ok(!`${r.stdout}${r.stderr}`.includes(master.key));

      const again = await sextant(['init', '--endpoint', `127.0.0.1:${node.initPort}`, '--workspace', dir]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already holds an initialized cluster; refusing/);

      const verify = await sextant([
        'verify',
        '--endpoint',
        `127.0.0.1:${node.initPort}`,
        '--workspace',
        dir,
      ]);
      assert.equal(verify.code, 0, verify.stderr);
      assert.match(verify.stdout, /^verified: /);
      assert.match(verify.stdout, /\nPCR 15: [0-9a-f]{64}\n/);
    } finally {
      await node.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
