// @tier system: swtpm (agents on loopback)
// kubeadm in this test is the stand-in (test/kubeadm): real PKI, config decoding and preflight, its own API server; no kubelet, no control-plane Pods.
// An interrupted `sextant init` loses nothing. Real agents with swtpm on loopback,
// the CLI in its own process receiving real SIGINT/SIGKILL, the agent killed at named points
// (SEXTANT_FAULT_KILL_AT, an environment hook in the agent) and its kubeadm slowed (KUBEADM_STANDIN_DELAY_PHASE)
// so that the request is in flight when the fault strikes.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LOCK_FILE, lockWorkspace, WorkspaceLockedError } from '../../cli/workspace/lock.js';
import { type AgentNode, startAgentNode } from '../harness/agent-node.js';
import { kubeadmStandin } from '../harness/cluster-kit.js';
import { createSwtpmCa, removeSwtpmCa, type SwtpmCa } from '../harness/swtpm.js';
import { tempDir } from '../harness/temp-dir.js';
import { type LocalWorkspace, writeLocalWorkspace } from '../harness/workspace.js';
import { runCliLocal, startCli } from './tools/cli-process.js';

const REPO = resolve(import.meta.dirname, '../..');
const HOLD_LOCK = join(REPO, 'test/faults/tools/hold-lock.ts');
const SLOW = { KUBEADM_STANDIN_DELAY_PHASE: 'wait-control-plane:6000' };
const PENDING = 'sextant-init-pending.json';

function holdLock(dir: string, mode: 'exit' | 'hold' | 'temp') {
  const child = spawn(process.execPath, ['--import', 'tsx', HOLD_LOCK, dir, mode], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = new Promise<string>((res) => {
    let buf = '';
    child.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.includes('\n')) res(buf.trim());
    });
  });
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  return { child, line, exited };
}

/** The workspace's leftovers an interrupted init must not leave: the lock, its attempts, temp files. */
async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.startsWith(LOCK_FILE) || /\.(tmp|new)$/.test(f));
}

describe('interrupted init: a rerun converges', { timeout: 600_000 }, () => {
  let ca: SwtpmCa;
  const root = tempDir('sextant-cli-faults-');
  const nodes: AgentNode[] = [];
  before(async () => {
    ca = await createSwtpmCa();
    kubeadmStandin();
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    removeSwtpmCa(ca);
  });

  let count = 0;
  async function workspace(): Promise<LocalWorkspace> {
    const dir = join(root, `ws-${count++}`);
    execFileSync('mkdir', ['-p', dir]);
    return writeLocalWorkspace(dir, { ca });
  }
  async function node(ws: LocalWorkspace, env: NodeJS.ProcessEnv = {}): Promise<AgentNode> {
    const n = await startAgentNode({ ca, initSecret: ws.initSecret, env });
    nodes.push(n);
    return n;
  }
  const endpoint = (n: AgentNode) => ['--endpoint', `127.0.0.1:${n.initPort}`];

  describe('workspace lock', () => {
    it('a second lock in the workspace is refused, naming the holder; released, it can be taken', async () => {
      const dir = join(root, 'lock-a');
      execFileSync('mkdir', ['-p', dir]);
      const first = await lockWorkspace(dir, 'init');
      await assert.rejects(
        lockWorkspace(dir, 'init'),
        (e: Error) =>
          e instanceof WorkspaceLockedError && new RegExp(`"init" \\(pid ${process.pid} `).test(e.message),
      );
      await first.release();
      await (await lockWorkspace(dir, 'init')).release();
      assert.deepEqual(await leftovers(dir), []);
    });

    it('a lock left by a killed process (SIGKILL) is taken over; one left by a clean exit is gone', async () => {
      const dir = join(root, 'lock-b');
      execFileSync('mkdir', ['-p', dir]);
      const clean = holdLock(dir, 'exit');
      assert.equal(await clean.line, 'locked');
      await clean.exited;
      assert.ok(!existsSync(join(dir, LOCK_FILE)), 'removed by the exit hook');

      const killed = holdLock(dir, 'hold');
      assert.equal(await killed.line, 'locked');
      await assert.rejects(lockWorkspace(dir, 'init'), WorkspaceLockedError);
      killed.child.kill('SIGKILL');
      await killed.exited;
      assert.ok(existsSync(join(dir, LOCK_FILE)), 'SIGKILL leaves the lock behind');
      await (await lockWorkspace(dir, 'init')).release();

      await writeFile(join(dir, LOCK_FILE), '{"pid":');
      await (await lockWorkspace(dir, 'init')).release();
    });

    it('two inits at once against two nodes of one workspace: one runs, the other is refused and changes nothing', async () => {
      const ws = await workspace();
      const [a, b] = await Promise.all([node(ws, SLOW), node(ws, SLOW)]);
      const first = startCli(ws.dir, ['init', ...endpoint(a)]);
      await first.waitForStderr(/node: running kubeadm init/);
      const second = await runCliLocal(ws.dir, ['init', ...endpoint(b)]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /another sextant command holds this workspace: "init" \(pid \d+/);
      assert.equal(await first.exited, 0, first.stderr());
      assert.ok(existsSync(join(ws.dir, 'sextant-admin.conf')));
      assert.ok(!b.lines.some((l) => /node lock taken/.test(String(l.msg))), 'node b untouched');
      assert.deepEqual(await leftovers(ws.dir), []);
    });
  });

  describe('temp files of atomic writes', () => {
    it('removed when the process exits mid-write (the admin key never stays behind)', async () => {
      const dir = join(root, 'temp-exit');
      execFileSync('mkdir', ['-p', dir]);
      const p = holdLock(dir, 'temp');
      const tmp = await p.line;
      await p.exited;
      assert.match(tmp, /\.sextant-admin\.conf\.[0-9a-f]{12}\.tmp$/);
      assert.ok(!existsSync(tmp));
    });

    it('stale ones a killed run left are removed by the next init, and it says so', async () => {
      const ws = await workspace();
      const n = await node(ws);
      await writeFile(join(ws.dir, '.sextant-admin.conf.0123456789ab.tmp'), 'stale secret', { mode: 0o600 });
      await writeFile(join(ws.dir, '.sextant-mastersecret.json.ba9876543210.new'), 'stale', { mode: 0o600 });
      const r = await runCliLocal(ws.dir, ['init', ...endpoint(n)]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /removed 2 temp file\(s\) an interrupted run left behind/);
      assert.deepEqual(await leftovers(ws.dir), []);
    });
  });

  describe('Ctrl-C while the request is in flight', () => {
    it('the first Ctrl-C says what is happening and keeps waiting: the result is written', async () => {
      const ws = await workspace();
      const n = await node(ws, SLOW);
      const cli = startCli(ws.dir, ['init', ...endpoint(n)]);
      await cli.waitForStderr(/node: running kubeadm init/);
      cli.child.kill('SIGINT');
      await cli.waitForStderr(
        /init is running on 127\.0\.0\.1:\d+: the node finishes it whether or not this command waits/,
      );
      assert.equal(await cli.exited, 0, cli.stderr());
      assert.ok(existsSync(join(ws.dir, 'sextant-admin.conf')));
      assert.ok(!existsSync(join(ws.dir, PENDING)));
      assert.deepEqual(await leftovers(ws.dir), []);
    });

    it('a second Ctrl-C stops waiting (exit 130, "run init again"); the next init fetches the result the node kept', async () => {
      const ws = await workspace();
      const n = await node(ws, SLOW);
      const cli = startCli(ws.dir, ['init', ...endpoint(n)]);
      await cli.waitForStderr(/node: running kubeadm init/);
      cli.child.kill('SIGINT');
      await cli.waitForStderr(/press Ctrl-C again/);
      cli.child.kill('SIGINT');
      assert.equal(await cli.exited, 130);
      assert.match(
        cli.stderr(),
        /stopped waiting for the node's answer: the node may be initialized; run init again to fetch the result/,
      );
      assert.ok(existsSync(join(ws.dir, PENDING)), 'init in progress recorded');
      assert.ok(!existsSync(join(ws.dir, 'sextant-admin.conf')));
      assert.deepEqual(await leftovers(ws.dir), []);

      await n.waitFor((l) => l.msg === 'cluster initialized', 60_000);
      const again = await runCliLocal(ws.dir, ['init']);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, /has no result here yet: asking the node for it/);
      assert.match(again.stderr, /answering with the result kept for its owner/);
      assert.ok(existsSync(join(ws.dir, 'sextant-admin.conf')));
      assert.ok(!existsSync(join(ws.dir, PENDING)));
    });

    it('the CLI killed outright (SIGKILL) after sending: the next init takes over its lock and fetches the result', async () => {
      const ws = await workspace();
      const n = await node(ws, SLOW);
      const cli = startCli(ws.dir, ['init', ...endpoint(n)]);
      await cli.waitForStderr(/node: running kubeadm init/);
      cli.child.kill('SIGKILL');
      await cli.exited;
      assert.ok(existsSync(join(ws.dir, LOCK_FILE)));
      await n.waitFor((l) => l.msg === 'cluster initialized', 60_000);
      const again = await runCliLocal(ws.dir, ['init']);
      assert.equal(again.code, 0, again.stderr);
      assert.ok(existsSync(join(ws.dir, 'sextant-admin.conf')));
      assert.deepEqual(await leftovers(ws.dir), []);
    });
  });

  describe('the CLI killed at each of its own writes: a plain rerun finishes, no --force', () => {
    const points: { point: string; sent: boolean; left: RegExp[] }[] = [
      // the lock's attempt file is written, not yet linked: nothing sent, the attempt file left
      { point: 'lock:before-link', sent: false, left: [/^\.sextant\.lock\.\d+-[0-9a-f]{16}$/] },
      // the node answered, the admin kubeconfig is written, the state and pending record not yet
      {
        point: 'cli-init:admin-conf-written',
        sent: true,
        left: [/^sextant-admin\.conf$/, /^sextant-init-pending\.json$/],
      },
      // the state is written, the pending record not yet removed
      {
        point: 'cli-init:state-written',
        sent: true,
        left: [/^sextant-state\.yaml$/, /^sextant-init-pending\.json$/],
      },
    ];
    for (const p of points) {
      it(`killed at ${p.point}`, async () => {
        const ws = await workspace();
        const n = await node(ws);
        const killed = await runCliLocal(ws.dir, ['init', ...endpoint(n)], {
          SEXTANT_FAULT_KILL_AT: p.point,
        });
        assert.notEqual(killed.code, 0, 'killed');
        const names = await readdir(ws.dir);
        for (const l of p.left)
          assert.ok(
            names.some((f) => l.test(f)),
            `${l} after the kill: ${names.join(' ')}`,
          );
        assert.equal(
          n.lines.some((l) => /node lock taken/.test(String(l.msg))),
          p.sent,
          p.sent ? 'the node got the request' : 'nothing was sent',
        );
        const again = await runCliLocal(ws.dir, ['init', ...endpoint(n)]);
        assert.equal(again.code, 0, again.stderr);
        assert.doesNotMatch(again.stderr, /already holds an initialized cluster|--force/);
        const after = await readdir(ws.dir);
        assert.ok(
          after.includes('sextant-admin.conf') && after.includes('sextant-state.yaml'),
          after.join(' '),
        );
        assert.ok(!after.includes(PENDING), 'no pending record once finished');
        assert.deepEqual(await leftovers(ws.dir), []);
        // and finished means finished: the next plain init refuses a second cluster
        const third = await runCliLocal(ws.dir, ['init', ...endpoint(n)]);
        assert.equal(third.code, 1);
        assert.match(third.stderr, /already holds an initialized cluster/);
      });
    }
  });

  describe('the connection lost, or no answer in time', () => {
    it('the agent killed after saving "bootstrapped", before the reply: "connection lost", not "refused"; after its restart the control plane serves :9000 and answers the repeated init', async () => {
      const ws = await workspace();
      const n = await node(ws, { SEXTANT_FAULT_KILL_AT: 'init:bootstrapped' });
      const r = await runCliLocal(ws.dir, ['init', ...endpoint(n)]);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /connection lost during init \(.*\): the node may be initialized; run init again to fetch the result/,
      );
      assert.doesNotMatch(r.stderr, /refused/);
      assert.ok(existsSync(join(ws.dir, PENDING)));

      await n.restart({ SEXTANT_FAULT_KILL_AT: '' });
      await n.waitFor((l) => l.msg === 'control plane resumed', 60_000);
      await n.waitFor((l) => l.msg === 'init server listening', 30_000);
      const again = await runCliLocal(ws.dir, ['init']);
      assert.equal(again.code, 0, again.stderr);
      assert.ok(existsSync(join(ws.dir, 'sextant-admin.conf')));
    });

    it('the agent killed mid-kubeadm: "connection lost", no kubeadm left running; the node asks for a reboot, after which init runs again', async () => {
      const ws = await workspace();
      const n = await node(ws, SLOW);
      const cli = startCli(ws.dir, ['init', ...endpoint(n)]);
      await n.waitFor(
        (l) => /spending \d+ ms in phase wait-control-plane|running kubeadm/.test(String(l.msg)),
        60_000,
      );
      await new Promise((r) => setTimeout(r, 1000));
      await n.kill('SIGKILL');
      assert.equal(await cli.exited, 1);
      assert.match(cli.stderr(), /connection lost during init/);
      await new Promise((r) => setTimeout(r, 500));
      const survivors = execFileSync('ps', ['-eo', 'pid,args'])
        .toString()
        .split('\n')
        .filter((l) => l.includes(n.rootfs) && / init /.test(l) && !/apiserver/.test(l));
      assert.deepEqual(survivors, [], 'kubeadm died with the agent');

      // Same boot: PCR 15 holds the interrupted init. The agent says a reboot is needed and exits.
      await n.restart();
      assert.equal(await n.exited(), 1);
      assert.match(n.stderr.join(''), /reboot the node/);
      // The reboot: PCR 15 back to zero; the agent resets the half-made node and init runs again.
      await n.tpm.restart();
      await n.restart();
      await n.waitFor((l) => l.msg === 'init server listening', 60_000);
      const again = await runCliLocal(ws.dir, ['init']);
      assert.equal(again.code, 0, again.stderr);
    });

    it('--timeout shorter than the init: its own message and next step, and the next init fetches the result', async () => {
      const ws = await workspace();
      const n = await node(ws, SLOW);
      const r = await runCliLocal(ws.dir, ['init', ...endpoint(n), '--timeout', '4']);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /no answer from the node within 4 s \(--timeout\): it may still be initializing; the node may be initialized; run init again to fetch the result/,
      );
      await n.waitFor((l) => l.msg === 'cluster initialized', 60_000);
      const again = await runCliLocal(ws.dir, ['init']);
      assert.equal(again.code, 0, again.stderr);
    });
  });

  describe("the node's reboot message reaches the CLI", () => {
    it('an init that failed on the node leaves it asking for a reboot; the next init says so as a hint', async () => {
      const ws = await workspace();
      const n = await node(ws, { KUBEADM_STANDIN_FAIL_PHASE: 'certs' });
      const first = await runCliLocal(ws.dir, ['init', ...endpoint(n)]);
      assert.equal(first.code, 1);
      assert.match(first.stderr, /init failed at step "kubeadm-init"/);
      assert.match(first.stderr, /hint: the node asks to be rebooted/);
      const second = await runCliLocal(ws.dir, ['init', ...endpoint(n)]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /the node refused init: .*reboot the node/);
      assert.match(second.stderr, /hint: the node asks to be rebooted/);
    });
  });

  it('a refusal (wrong init secret) is still a refusal, and leaves no "init in progress" behind', async () => {
    const ws = await workspace();
    const other = await workspace();
    const n = await node(other);
    const r = await runCliLocal(ws.dir, ['init', ...endpoint(n)]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the node refused init: PERMISSION_DENIED: init secret does not match this node/);
    assert.ok(!existsSync(join(ws.dir, PENDING)));
  });
});
