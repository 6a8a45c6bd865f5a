// `sextant init`'s steps in-process, the node and the workspace files swapped for fakes: where the request goes
// (a pending record is finished by a plain rerun), each way the node can answer (exit code, what is printed, the
// hint from the node's remedy field, whether the pending record goes), Ctrl-C before and after sending, and a rerun
// from each point a killed run can leave the workspace at.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { AttestedChannelError } from '../../../attestation/atls/index.js';
import {
  InitConnectionLostError,
  InitFailedError,
  InitInterruptedError,
  InitRefusedError,
  InitTimeoutError,
} from '../../../cli/init/init-cluster.js';
import {
  chooseTarget,
  type InitFiles,
  type InitNode,
  type NodeCallbacks,
  outcomeOf,
  runInitSteps,
} from '../../../cli/init/run-init.js';
import type { PendingInit } from '../../../cli/workspace/init-pending.js';
import type { ClusterState } from '../../../cli/workspace/state.js';
import type { InitRemedy } from '../../../common/contracts/init-remedy.js';
import {
  deriveClusterId,
  deriveMeasurementSecret,
  deriveOwnerId,
  type MasterSecret,
} from '../../../common/keys.js';
import type { InitRequest, InitSuccess } from '../../../gen/proto/init.js';

const NODE = '127.0.0.1:9000';
const OTHER = '127.0.0.2:9000';
const MASTER: MasterSecret = { key: Buffer.alloc(32, 1), salt: Buffer.alloc(32, 2) };

/** The workspace files in memory; each write is recorded in order. */
class FakeFiles implements InitFiles {
  pending: PendingInit | undefined;
  adminConf: Uint8Array | undefined;
  state: ClusterState | undefined;
  master: MasterSecret | undefined;
  writes: string[] = [];
  async loadPending() {
    return this.pending;
  }
  async savePending(p: PendingInit) {
    this.writes.push('pending');
    this.pending = p;
  }
  async clearPending() {
    if (this.pending) this.writes.push('clear-pending');
    this.pending = undefined;
  }
  async masterSecret() {
    const created = this.master === undefined;
    this.master ??= MASTER;
    if (created) this.writes.push('master-secret');
    return { secret: this.master, created, source: 'a fake' };
  }
  async writeAdminConf(k: Uint8Array) {
    this.writes.push('admin-conf');
    this.adminConf = k;
  }
  async saveState(s: ClusterState) {
    this.writes.push('state');
    this.state = s;
  }
}

function successFor(salt: Buffer, master = MASTER): InitSuccess {
  return {
    kubeconfig: Buffer.from('apiVersion: v1\n'),
    clusterId: deriveClusterId(deriveMeasurementSecret(master), salt),
    ownerId: deriveOwnerId(master),
    endpoint: '127.0.0.1:6443',
  };
}

/** A node that attests, takes the request and answers with `answer` (an InitSuccess, or an error to throw). */
function fakeNode(answer: (req: InitRequest, cb: NodeCallbacks) => Promise<InitSuccess>) {
  const calls: { endpoint: string; request?: InitRequest }[] = [];
  const node: InitNode = async (endpoint, cb) => {
    const call: { endpoint: string; request?: InitRequest } = {
      endpoint: `${endpoint.host}:${endpoint.port}`,
    };
    calls.push(call);
    if (cb.signal.aborted) throw new InitInterruptedError(false);
    call.request = await cb.request();
    if (cb.signal.aborted) throw new InitInterruptedError(false);
    return answer(call.request, cb);
  };
  return { node, calls };
}

const answers = (req: InitRequest) => Promise.resolve(successFor(Buffer.from(req.measurementSalt)));

function harness(
  files: FakeFiles,
  node: InitNode,
  opts: { endpoint?: string; force?: boolean; interrupts?: EventEmitter } = {},
) {
  let stderr = '';
  let stdout = '';
  const run = () =>
    runInitSteps({
      workspace: '/ws',
      files,
      node,
      buildRequest: ({ measurementSalt }) => ({ measurementSalt }) as unknown as InitRequest,
      defaultEndpoint: async () => NODE,
      initPort: 9000,
      ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
      force: opts.force ?? false,
      interrupts: (opts.interrupts ?? new EventEmitter()) as never,
      progress: (m) => {
        stderr += `${m}\n`;
      },
      stdout: { write: (c: string) => (stdout += c) },
      stderr: { write: (c: string) => (stderr += c) },
      now: () => new Date('2026-01-01T00:00:00Z'),
    });
  return { run, stderr: () => stderr, stdout: () => stdout };
}

const pendingAt = (node: string): PendingInit => ({
  node,
  measurementSalt: randomBytes(32),
  startedAt: new Date('2025-12-31T00:00:00Z'),
});

describe('cli/init: where the request goes (chooseTarget)', () => {
  const p = pendingAt(NODE);
  const cases: {
    name: string;
    pending?: PendingInit;
    endpoint?: string;
    force?: boolean;
    want: string;
  }[] = [
    { name: 'no record, no endpoint: the default node', want: 'new:' },
    { name: 'no record, an endpoint: that node', endpoint: OTHER, want: `new:${OTHER}` },
    { name: 'a record, no endpoint: finish it', pending: p, want: `resume:${NODE}` },
    { name: 'a record and its own node: finish it', pending: p, endpoint: NODE, want: `resume:${NODE}` },
    { name: 'a record and --force alone: still finish it', pending: p, force: true, want: `resume:${NODE}` },
    { name: 'a record, another node: refused', pending: p, endpoint: OTHER, want: 'conflict' },
    {
      name: 'a record, another node and --force: that node',
      pending: p,
      endpoint: OTHER,
      force: true,
      want: `new:${OTHER}`,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const t = chooseTarget(c.pending, c.endpoint, c.force ?? false);
      const got = t.kind === 'conflict' ? 'conflict' : `${t.kind}:${t.node ?? ''}`;
      assert.equal(got, c.want);
      if (t.kind === 'conflict') {
        assert.match(t.message, new RegExp(`init sent to ${NODE} .* has no result in this workspace yet`));
        assert.match(t.message, /--force to abandon it/);
      }
    });
  }
});

describe('cli/init: how an init that did not succeed ends (outcomeOf)', () => {
  const cases: {
    name: string;
    err: unknown;
    resuming?: boolean;
    code: number;
    lines: RegExp[];
    clear: boolean;
  }[] = [
    {
      name: 'failed on the node, remedy reboot: its log and the reboot hint; nothing to fetch',
      err: new InitFailedError('kubeadm-init', 'kubeadm-init: boom', ['line a'], 'reboot'),
      code: 1,
      lines: [
        /^init failed at step "kubeadm-init": kubeadm-init: boom$/,
        /^ {2}line a$/,
        /^hint: the node asks to be rebooted/,
      ],
      clear: true,
    },
    {
      name: 'failed with no remedy: no hint, whatever the wording says',
      err: new InitFailedError('kubeadm-init', 'reboot the node', [], undefined),
      code: 1,
      lines: [/^init failed at step/],
      clear: true,
    },
    {
      name: 'refused with remedy reboot: the hint',
      err: new InitRefusedError(grpc.status.FAILED_PRECONDITION, 'FAILED_PRECONDITION: x', 'reboot'),
      code: 1,
      lines: [/^the node refused init: FAILED_PRECONDITION: x$/, /^hint: the node asks to be rebooted/],
      clear: true,
    },
    {
      name: 'refused with remedy retry-later: the fetch-later hint',
      err: new InitRefusedError(grpc.status.FAILED_PRECONDITION, 'busy', 'retry-later' as InitRemedy),
      code: 1,
      lines: [/^the node refused init: busy$/, /^hint: the node is initializing already/],
      clear: true,
    },
    {
      name: 'refused while finishing a record: the record stays',
      err: new InitRefusedError(grpc.status.FAILED_PRECONDITION, 'no'),
      resuming: true,
      code: 1,
      lines: [/^the node refused init: no$/],
      clear: false,
    },
    {
      name: 'connection lost: the record stays',
      err: new InitConnectionLostError(grpc.status.UNAVAILABLE, 'UNAVAILABLE: x'),
      code: 1,
      lines: [/^connection lost during init .*run init again to fetch the result$/],
      clear: false,
    },
    {
      name: 'no answer in time: the record stays',
      err: new InitTimeoutError(4),
      code: 1,
      lines: [/^no answer from the node within 4 s/],
      clear: false,
    },
    {
      name: 'stopped waiting after sending: 130, the record stays',
      err: new InitInterruptedError(true),
      code: 130,
      lines: [/^stopped waiting for the node's answer/],
      clear: false,
    },
    {
      name: 'interrupted before sending: 130, nothing changed on the node',
      err: new InitInterruptedError(false),
      code: 130,
      lines: [/^interrupted before the init request was sent: nothing was changed on the node$/],
      clear: true,
    },
    {
      name: 'attestation refused: nothing was sent',
      err: new AttestedChannelError({ host: '127.0.0.1', port: 9000 }, 'verify', 'PCR 4 differs'),
      code: 1,
      lines: [/^nothing was sent: /],
      clear: true,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const o = outcomeOf(c.err, c.resuming ?? false);
      assert.ok(o);
      assert.equal(o.code, c.code);
      assert.equal(o.clearPending, c.clear);
      for (const re of c.lines)
        assert.ok(
          o.lines.some((l) => re.test(l)),
          `${re} in ${o.lines.join(' | ')}`,
        );
      if (c.lines.length === 1 && !(c.err instanceof InitFailedError)) {
        assert.ok(!o.lines.some((l) => l.startsWith('hint:')), 'no hint without a remedy');
      }
    });
  }
  it("an error that is not init's is not mapped (rethrown by the caller)", () => {
    assert.equal(outcomeOf(new Error('EACCES'), false), undefined);
  });
});

describe('cli/init: runInitSteps', () => {
  it('a fresh init: master secret, pending record before sending, then admin kubeconfig, state, record gone', async () => {
    const files = new FakeFiles();
    const { node, calls } = fakeNode(answers);
    const h = harness(files, node);
    assert.equal(await h.run(), 0, h.stderr());
    assert.deepEqual(files.writes, ['master-secret', 'pending', 'admin-conf', 'state', 'clear-pending']);
    assert.equal(calls[0]?.endpoint, NODE);
    assert.equal(files.state?.initNode, NODE);
    assert.match(
      h.stdout(),
      /^cluster ID: [0-9a-f]{64}\nowner ID: [0-9a-f]{64}\nAPI server: 127\.0\.0\.1:6443\n/,
    );
  });

  it('an answer whose IDs do not derive from this workspace: nothing written, exit 1', async () => {
    const files = new FakeFiles();
    const { node } = fakeNode(async () => successFor(randomBytes(32)));
    const h = harness(files, node);
    assert.equal(await h.run(), 1);
    assert.match(h.stderr(), /does not derive from this workspace/);
    assert.equal(files.adminConf, undefined);
    assert.equal(files.state, undefined);
  });

  // Each point a killed run can leave the workspace at (what it wrote so far), and the plain rerun from there:
  // it goes back to the recorded node with the recorded salt and ends with everything written, no record left.
  const killPoints: { name: string; leave: (f: FakeFiles, salt: Buffer) => void }[] = [
    { name: 'after the pending record', leave: () => {} },
    {
      name: 'after sextant-admin.conf was written',
      leave: (f) => {
        f.adminConf = Buffer.from('old');
      },
    },
    {
      name: 'after sextant-state.yaml was written (the record not yet removed)',
      leave: (f, salt) => {
        const s = successFor(salt);
        f.adminConf = s.kubeconfig;
        f.state = {
          clusterId: s.clusterId,
          ownerId: s.ownerId,
          endpoint: s.endpoint,
          initNode: NODE,
          createdAt: new Date(),
        };
      },
    },
  ];
  for (const k of killPoints) {
    it(`killed ${k.name}: a plain rerun fetches the kept answer and finishes`, async () => {
      const files = new FakeFiles();
      files.master = MASTER;
      files.pending = pendingAt(NODE);
      const salt = files.pending.measurementSalt;
      k.leave(files, salt);
      const { node, calls } = fakeNode(answers);
      const h = harness(files, node);
      assert.equal(await h.run(), 0, h.stderr());
      assert.match(h.stderr(), /has no result here yet: asking the node for it/);
      assert.equal(calls[0]?.endpoint, NODE);
      assert.deepEqual(Buffer.from(calls[0]?.request?.measurementSalt ?? []), salt, 'the recorded salt');
      assert.deepEqual(files.writes, ['admin-conf', 'state', 'clear-pending'], 'no new record');
      assert.equal(files.pending, undefined);
      assert.deepEqual(files.state?.clusterId, successFor(salt).clusterId);
    });
  }

  it('a record and another --endpoint: refused, nothing sent or written', async () => {
    const files = new FakeFiles();
    files.pending = pendingAt(NODE);
    const { node, calls } = fakeNode(answers);
    const h = harness(files, node, { endpoint: OTHER });
    assert.equal(await h.run(), 1);
    assert.equal(calls.length, 0);
    assert.deepEqual(files.writes, []);
  });

  it('Ctrl-C before the request is sent: 130, no pending record, the node never got a request', async () => {
    const files = new FakeFiles();
    const interrupts = new EventEmitter();
    let open!: () => void;
    const gate = { promise: new Promise<void>((r) => (open = r)), resolve: () => open() };
    const node: InitNode = async (_e, cb) => {
      await gate.promise; // still attesting
      if (cb.signal.aborted) throw new InitInterruptedError(false);
      await cb.request();
      return answers({ measurementSalt: randomBytes(32) } as unknown as InitRequest);
    };
    const h = harness(files, node, { interrupts });
    const running = h.run();
    await new Promise((r) => setImmediate(r));
    interrupts.emit('SIGINT');
    gate.resolve();
    assert.equal(await running, 130);
    assert.match(h.stderr(), /interrupted before the init request was sent: nothing was changed on the node/);
    assert.deepEqual(files.writes, []);
    assert.equal(interrupts.listenerCount('SIGINT'), 0, 'handler removed');
  });

  it('Ctrl-C after sending: the first says the node goes on and keeps waiting, the second stops (130), record kept', async () => {
    const files = new FakeFiles();
    const interrupts = new EventEmitter();
    const node = fakeNode(
      (_req, cb) =>
        new Promise((_res, rej) => {
          interrupts.emit('SIGINT');
          assert.equal(cb.signal.aborted, false, 'the first Ctrl-C keeps waiting');
          cb.signal.addEventListener('abort', () => rej(new InitInterruptedError(true)));
          interrupts.emit('SIGINT');
        }),
    ).node;
    const h = harness(files, node, { interrupts });
    assert.equal(await h.run(), 130);
    assert.match(h.stderr(), /init is running on 127\.0\.0\.1:9000: the node finishes it whether or not/);
    assert.match(h.stderr(), /stopped waiting for the node's answer/);
    assert.ok(files.pending, 'the next init fetches the result');
    assert.equal(files.adminConf, undefined);
  });

  it('a failure on the node removes the record and prints the hint its remedy names', async () => {
    const files = new FakeFiles();
    const { node } = fakeNode(async () => {
      throw new InitFailedError('kubeadm-init', 'kubeadm-init: x', ['a'], 'reboot');
    });
    const h = harness(files, node);
    assert.equal(await h.run(), 1);
    assert.match(h.stderr(), /hint: the node asks to be rebooted/);
    assert.equal(files.pending, undefined);
    assert.deepEqual(files.writes, ['master-secret', 'pending', 'clear-pending']);
  });
});
