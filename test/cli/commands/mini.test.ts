// mini up and mini down against fake neighbours (release build, provider, init, the node list): which phases run
// from an empty workspace, which a second run skips, what a gone VM or a failed init says, and what down removes.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Backends } from '../../../cli/commands/backends.js';
import { createContext } from '../../../cli/commands/context.js';
import { COMMANDS } from '../../../cli/commands/index.js';
import { type MiniDeps, miniDown, miniUp } from '../../../cli/commands/mini.js';
import { loadConfig } from '../../../cli/config/file.js';
import { writeRelease } from '../release/fixtures/release.js';

const cleanup: string[] = [];
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of cleanup) await rm(d, { recursive: true, force: true });
});

interface Calls {
  release: number;
  create: number;
  init: number;
  terminate: number;
}

/** A provider whose "VMs" are sleeping shells naming the provider directory (so the pid checks see them). */
function fakes(options: { initCode?: number; readyAfter?: number } = {}) {
  const calls: Calls = { release: 0, create: 0, init: 0, terminate: 0 };
  let polls = 0;
  let releaseDir = '';
  const backends: Backends = {
    runInit: async (ctx) => {
      calls.init++;
      if (options.initCode) return options.initCode;
      await writeFile(join(ctx.workspace, 'sextant-admin.conf'), 'kubeconfig', { mode: 0o600 });
      await writeFile(join(ctx.workspace, 'sextant-state.yaml'), 'state');
      return 0;
    },
    runVerify: async () => 0,
    statusProbes: async () => assert.fail('status is not run here'),
    provider: async () => ({
      async createNodes(ws, spec) {
        calls.create++;
        for (const n of spec.nodes) {
          const dir = join(ws, 'qemu', n.name);
          await mkdir(dir, { recursive: true });
          const child = spawn('sh', ['-c', 'sleep 600', join(ws, 'qemu')], { stdio: 'ignore' });
          children.push(child);
          await writeFile(join(dir, 'qemu.pid'), `${child.pid}\n`);
        }
        return { nodes: spec.nodes.map((n, i) => ({ ...n, address: `10.0.0.${10 + i}` })) };
      },
      async terminateNodes(ws) {
        calls.terminate++;
        for (const c of children) c.kill('SIGKILL');
        await rm(join(ws, 'qemu'), { recursive: true, force: true });
      },
    }),
  };
  const deps: MiniDeps = {
    buildRelease: async () => {
      calls.release++;
      releaseDir = await writeRelease();
      cleanup.push(releaseDir);
      return releaseDir;
    },
    getNodes: async () => {
      polls++;
      const ready = polls > (options.readyAfter ?? 0);
      const names = ['sextant-cp-0', 'sextant-worker-0', 'sextant-worker-1'];
      return {
        items: names.map((name) => ({
          metadata: { name },
          status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
        })),
      };
    },
    sleep: async () => undefined,
  };
  return { calls, backends, deps };
}

async function workspace(): Promise<string> {
  const ws = await mkdtemp(join(tmpdir(), 'sextant-mini-'));
  cleanup.push(ws);
  return ws;
}

function context(ws: string) {
  const out = { stdout: '', stderr: '' };
  const ctx = createContext({
    workspace: ws,
    stdout: { write: (s: string) => (out.stdout += s) },
    stderr: { write: (s: string) => (out.stderr += s) },
  });
  return { ctx, out };
}

const UP = { controlPlanes: 1, workers: 2, preloadImages: [], readyTimeoutSeconds: 60 };

describe('sextant mini up', () => {
  it('from an empty workspace runs every phase and prints the kubectl command', async () => {
    const ws = await workspace();
    const f = fakes({ readyAfter: 2 });
    const { ctx, out } = context(ws);
    assert.equal(await miniUp(ctx, UP, f.backends, f.deps), 0);
    assert.deepEqual(f.calls, { release: 1, create: 1, init: 1, terminate: 0 });
    const config = await loadConfig(ws);
    assert.deepEqual(config.nodes, { controlPlanes: 1, workers: 2 });
    assert.equal(config.kubernetes.version, 'v1.34.4');
    assert.match(out.stdout, /3 node\(s\) Ready/);
    assert.match(out.stdout, new RegExp(`kubectl --kubeconfig ${join(ws, 'sextant-admin.conf')} get nodes`));
    // every next step it suggests is a command this CLI has
    const suggested = [...out.stdout.matchAll(/^ +sextant ([a-z]+(?: [a-z]+)?)/gm)].map((m) => m[1]!);
    assert.ok(suggested.length > 0, out.stdout);
    const known = COMMANDS.map((c) => c.path.join(' '));
    for (const s of suggested)
      assert.ok(known.includes(s) || known.includes(s.split(' ')[0]!), `sextant ${s}`);
    for (const phase of ['release', 'config', 'create', 'init', 'ready']) {
      assert.match(out.stderr, new RegExp(`\\] ${phase}: done in [0-9.]+ s`), phase);
    }
    // a second run resumes: nothing is built, created or initialized again
    const again = fakes();
    const second = context(ws);
    assert.equal(await miniUp(second.ctx, UP, again.backends, again.deps), 0);
    assert.deepEqual(again.calls, { release: 0, create: 0, init: 0, terminate: 0 });
    assert.match(second.out.stderr, /create: 3 VM\(s\) running already/);
    assert.match(second.out.stderr, /init: the cluster is initialized already/);
  });

  it('--kms names where the master secret lives in the config it generates', async () => {
    const ws = await workspace();
    const f = fakes();
    const kms = 'transit+http://127.0.0.1:8200/transit/sextant-master';
    assert.equal(await miniUp(context(ws).ctx, { ...UP, kms }, f.backends, f.deps), 0);
    assert.equal((await loadConfig(ws)).kms, kms);
    await f.backends.provider('qemu').then((p) => p.terminateNodes(ws, () => undefined));
  });

  const up = COMMANDS.find((c) => c.path.join(' ') === 'mini up');
  const badKms: { value: string; says: RegExp }[] = [
    { value: 'vault://x', says: /UsageError: --kms: expected "file", "transit\+https/ },
    { value: 'pkcs11:', says: /UsageError: --kms: / },
  ];
  for (const b of badKms) {
    it(`--kms ${b.value} is a usage error naming the flag`, () => {
      assert.throws(() => up?.parse({ values: { kms: b.value }, positionals: [] }), b.says);
    });
  }

  it('a workspace whose VMs are gone says to run mini down', async () => {
    const ws = await workspace();
    const f = fakes();
    assert.equal(await miniUp(context(ws).ctx, UP, f.backends, f.deps), 0);
    for (const c of children) c.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    await assert.rejects(
      miniUp(context(ws).ctx, UP, fakes().backends, fakes().deps),
      /create: 3 of 3 VM\(s\) of this workspace are gone .*mini down.*state: 0 of 3 VM\(s\) running/s,
    );
  });

  it('a failed init returns its code and says the state and how to resume', async () => {
    const ws = await workspace();
    const f = fakes({ initCode: 1 });
    const { ctx, out } = context(ws);
    assert.equal(await miniUp(ctx, UP, f.backends, f.deps), 1);
    assert.match(
      out.stderr,
      /init did not finish \(exit 1\); state: 3 of 3 VM\(s\) running, the cluster is not initialized/,
    );
    assert.match(out.stderr, /mini up" again to resume/);
    await f.backends.provider('qemu').then((p) => p.terminateNodes(ws, () => undefined));
  });

  it('nodes that never turn Ready end in an error naming the count', async () => {
    const ws = await workspace();
    const f = fakes({ readyAfter: 1e9 });
    await assert.rejects(
      miniUp(context(ws).ctx, { ...UP, readyTimeoutSeconds: 0.001 }, f.backends, f.deps),
      /ready: not every node Ready within 0\.001 s \(last: 0 of 3 Ready \(3 registered\)\)/,
    );
    await f.backends.provider('qemu').then((p) => p.terminateNodes(ws, () => undefined));
  });
});

describe('sextant mini down', () => {
  it('refuses a directory that is not a workspace', async () => {
    const ws = await workspace();
    await writeFile(join(ws, 'notes.txt'), 'mine');
    const { ctx, out } = context(ws);
    assert.equal(await miniDown(ctx, { yes: true }, fakes().backends), 1);
    assert.match(out.stderr, /is not a Sextant workspace .*nothing removed/);
    assert.deepEqual(await readdir(ws), ['notes.txt']);
  });

  it('asks first; a no keeps everything, --yes removes the VMs and the sextant files only', async () => {
    const ws = await workspace();
    const f = fakes();
    assert.equal(await miniUp(context(ws).ctx, UP, f.backends, f.deps), 0);
    await writeFile(join(ws, 'notes.txt'), 'mine');
    let asked = '';
    const no = context(ws);
    assert.equal(
      await miniDown(no.ctx, { yes: false }, f.backends, async (q) => {
        asked = q;
        return false;
      }),
      1,
    );
    assert.match(
      asked,
      /stop 3 VM\(s\) and delete .*sextant-mastersecret|stop 3 VM\(s\) and delete .*sextant-conf\.yaml/,
    );
    assert.equal(f.calls.terminate, 0);
    assert.ok(existsSync(join(ws, 'sextant-conf.yaml')));
    const yes = context(ws);
    assert.equal(await miniDown(yes.ctx, { yes: true }, f.backends), 0);
    assert.equal(f.calls.terminate, 1);
    assert.deepEqual(await readdir(ws), ['notes.txt']);
    assert.match(yes.out.stderr, /stopped 3 VM\(s\)/);
  });
});
