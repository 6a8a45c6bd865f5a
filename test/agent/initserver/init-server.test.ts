// The init server in-process: every refusal before the node lock leaves the node as it was; every step failure
// after it marks the node for reset and streams the failure with the node's logs.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  type InitKubeadmInput,
  InitServer,
  type InitServerDeps,
} from '../../../agent/initserver/init-server.js';
import { admissionMeasurements } from '../../../agent/joinservice/measurements-source.js';
import { rewriteKubeconfigServer } from '../../../agent/kubeadm/kubeconfig.js';
import { clusterPcrValue, NodeLock } from '../../../agent/nodelock/node-lock.js';
import type { ClusterSecrets } from '../../../agent/state/cluster-secrets.js';
import { formatMeasurementsFile } from '../../../attestation/measurements.js';
import { INIT_REMEDY_METADATA } from '../../../common/contracts/init-remedy.js';
import {
  deriveClusterId,
  deriveDiskKey,
  deriveMeasurementSecret,
  deriveOwnerId,
} from '../../../common/keys.js';
import type { InitRequest, InitResponse } from '../../../gen/proto/init.js';
import { everyRequiredPcr } from '../../attestation/required-pcrs.js';
import { recordingLog } from '../../harness/recording-log.js';
import { deferred, FakeDisk, FakeStateStore, FakeTpm, validInitRequest } from '../fakes.js';

const initSecret = randomBytes(32);

function request(overrides: Partial<InitRequest> = {}): InitRequest {
  return validInitRequest({
    initSecret,
    measurements: Buffer.from(formatMeasurementsFile(everyRequiredPcr(), { version: 'img-1', serial: 3 })),
    ...overrides,
  });
}

function clusterIdOf(req: InitRequest): Buffer {
  const master = req.keySource?.$case === 'masterSecret' ? req.keySource.value : undefined;
  if (!master) throw new Error('test request without master secret');
  return deriveClusterId(deriveMeasurementSecret(master), req.measurementSalt);
}

const ADMIN_CONF = Buffer.from(
  'apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n',
);

interface Fixture {
  server: InitServer;
  deps: InitServerDeps;
  tpm: FakeTpm;
  lock: NodeLock;
  state: FakeStateStore;
  log: ReturnType<typeof recordingLog>;
  calls: string[];
  joinServiceSecrets: ClusterSecrets[];
}

function fixture(overrides: Partial<InitServerDeps> = {}): Fixture {
  const tpm = new FakeTpm();
  const lock = new NodeLock(tpm);
  const state = new FakeStateStore();
  const log = recordingLog();
  const calls: string[] = [];
  const joinServiceSecrets: ClusterSecrets[] = [];
  const deps: InitServerDeps = {
    log,
    metadata: {
      name: 'cp-0',
      role: 'control-plane',
      initSecretHash: createHash('sha256').update(initSecret).digest('hex'),
      advertiseAddress: '10.0.0.5',
      peers: [],
      joinEndpoints: [],
    },
    lock,
    state,
    apiServerPort: 6443,
    // the agent's own check (agent/main.ts wires the same one)
    checkMeasurements: (text) => void admissionMeasurements(text, 'measurements'),
    installComponents: async () => {
      calls.push('install');
    },
    runKubeadmInit: async () => {
      calls.push('kubeadm-init');
      return ADMIN_CONF;
    },
    rewriteKubeconfigServer,
    startJoinService: async (secrets) => {
      calls.push('join-service');
      joinServiceSecrets.push(secrets);
    },
    resetKubernetes: async () => {
      calls.push('reset');
    },
    ...overrides,
  };
  return { server: new InitServer(deps), deps, tpm, lock, state, log, calls, joinServiceSecrets };
}

function writer(): { out: InitResponse[]; write(msg: InitResponse): boolean } {
  const out: InitResponse[] = [];
  return { out, write: (msg) => out.push(msg) > 0 };
}

function kinds(out: InitResponse[]): string[] {
  return out.map((m) => m.kind?.$case ?? 'none');
}

describe('InitServer: a successful init', () => {
  it('writes an IPv6 advertise address in brackets in the endpoint, the kubeconfig and the cluster secrets', async () => {
    const base = fixture();
    const f = fixture({ metadata: { ...base.deps.metadata, advertiseAddress: 'fd00::5' } });
    const w = writer();
    await f.server.init(request(), w);
    const last = w.out.at(-1)?.kind;
    assert.equal(last?.$case, 'success');
    if (last?.$case !== 'success') return;
    assert.equal(last.value.endpoint, '[fd00::5]:6443');
    assert.match(last.value.kubeconfig.toString(), /server: https:\/\/\[fd00::5\]:6443/);
    assert.equal(f.joinServiceSecrets[0]?.apiServerEndpoint, '[fd00::5]:6443');
  });

  const tunings: [string, InitKubeadmInput['tuning']][] = [
    ['no tuning', undefined],
    ["the 'qemu-tcg' tuning", 'qemu-tcg'],
  ];
  for (const [name, kubeadmTuning] of tunings) {
    it(`hands kubeadm init ${name} when the metadata names it`, async () => {
      const inputs: InitKubeadmInput[] = [];
      const base = fixture();
      const f = fixture({
        metadata: { ...base.deps.metadata, ...(kubeadmTuning ? { kubeadmTuning } : {}) },
        runKubeadmInit: async (input) => {
          inputs.push(input);
          return ADMIN_CONF;
        },
      });
      await f.server.init(request(), writer());
      assert.equal(inputs.length, 1);
      assert.equal(inputs[0]?.tuning, kubeadmTuning);
      assert.equal('tuning' in (inputs[0] ?? {}), kubeadmTuning !== undefined);
    });
  }

  it('takes the lock with the cluster ID, runs the steps in order and answers with the kubeconfig', async () => {
    const f = fixture();
    const req = request();
    const w = writer();
    await f.server.init(req, w);
    const clusterId = clusterIdOf(req);
    assert.deepEqual(f.calls, ['install', 'kubeadm-init', 'join-service']);
    assert.deepEqual(f.state.phases(), ['initializing', 'bootstrapped']);
    assert.deepEqual(f.tpm.pcrs.get(15), clusterPcrValue(clusterId));
    assert.equal(f.lock.holder, 'init');
    const last = w.out.at(-1)?.kind;
    assert.equal(last?.$case, 'success');
    if (last?.$case !== 'success') return;
    assert.deepEqual(last.value.clusterId, clusterId);
    const master = req.keySource?.$case === 'masterSecret' ? req.keySource.value : undefined;
    assert.deepEqual(last.value.ownerId, deriveOwnerId(master!));
    assert.equal(last.value.endpoint, '10.0.0.5:6443');
    assert.match(last.value.kubeconfig.toString(), /server: https:\/\/10\.0\.0\.5:6443/);
    assert.equal(f.joinServiceSecrets[0]?.apiServerEndpoint, '10.0.0.5:6443');
    assert.equal(f.joinServiceSecrets[0]?.clusterName, 'sextant-test');
    assert.equal(f.state.current?.clusterId, clusterId.toString('hex'));
    assert.equal(f.state.current?.role, 'control-plane');
    assert.equal(f.state.current?.origin, 'init');
    assert.ok(
      kinds(w.out)
        .slice(0, -1)
        .every((k) => k === 'log'),
      'progress lines before the answer',
    );
    const all = f.log.lines.join('\n');
    assert.ok(!all.includes(initSecret.toString('hex')) && !all.includes(initSecret.toString('base64')));
  });
});

describe('InitServer: refusals before the lock leave the node as it was', () => {
  const refusals: {
    name: string;
    req?: Partial<InitRequest>;
    deps?: (f: { calls: string[] }) => Partial<InitServerDeps>;
    error: RegExp;
    code: grpc.status;
  }[] = [
    {
      name: 'empty init secret',
      req: { initSecret: Buffer.alloc(0) },
      error: /init_secret/,
      code: grpc.status.INVALID_ARGUMENT,
    },
    {
      name: 'wrong init secret',
      req: { initSecret: randomBytes(32) },
      error: /init secret does not match this node/,
      code: grpc.status.PERMISSION_DENIED,
    },
    {
      name: 'KMS instead of a master secret',
      req: { keySource: { $case: 'kmsUri', value: 'kms://x' } },
      error: /kms_uri/,
      code: grpc.status.UNIMPLEMENTED,
    },
    {
      name: 'short master secret',
      req: { keySource: { $case: 'masterSecret', value: { key: randomBytes(16), salt: randomBytes(32) } } },
      error: /master_secret\.key/,
      code: grpc.status.INVALID_ARGUMENT,
    },
    {
      name: 'measurements that do not parse',
      req: { measurements: Buffer.from('garbage') },
      error: /measurements/,
      code: grpc.status.INVALID_ARGUMENT,
    },
    {
      // refused here, before kubeadm init, not later at the JoinService with the node locked
      name: 'measurements weaker than the minimum (all warnOnly)',
      req: { measurements: Buffer.from(formatMeasurementsFile(everyRequiredPcr({ warnOnly: true }))) },
      error: /measurements: .*weaker than the minimum enforced set.*PCR 0 is warnOnly/,
      code: grpc.status.INVALID_ARGUMENT,
    },
    {
      name: 'bad Kubernetes version',
      req: { kubernetesVersion: '1.31' },
      error: /kubernetes_version/,
      code: grpc.status.INVALID_ARGUMENT,
    },
    {
      name: 'a component that fails to download or hash-check',
      deps: () => ({
        installComponents: async () => {
          throw new Error('sha256 mismatch for kubeadm');
        },
      }),
      error: /kubernetes_components: sha256 mismatch/,
      code: grpc.status.INVALID_ARGUMENT,
    },
  ];
  for (const r of refusals) {
    it(`refuses ${r.name}`, async () => {
      const calls: string[] = [];
      const f = fixture(r.deps?.({ calls }) ?? {});
      const w = writer();
      let caught: unknown;
      await f.server.init(request(r.req), w).catch((err: unknown) => {
        caught = err;
      });
      assert.ok(caught instanceof Error, 'rejected');
      assert.match(caught.message, r.error);
      assert.equal(f.lock.holder, null, 'lock not taken');
      assert.equal(f.tpm.extends.length, 0, 'PCR 15 untouched');
      assert.deepEqual(f.state.saved, [], 'no state written');
      assert.ok(!f.calls.includes('kubeadm-init') && !f.calls.includes('reset'));
      assert.ok(!kinds(w.out).includes('success') && !kinds(w.out).includes('failure'));
      // The same refusal through the gRPC handler carries the status code.
      const status = await callHandler(fixture(r.deps?.({ calls }) ?? {}).server, request(r.req));
      assert.equal(status.code, r.code);
      assert.match(status.details, r.error);
      // The node is still initializable afterwards.
      if (r.deps === undefined) {
        const ok = writer();
        await f.server.init(request(), ok);
        assert.equal(ok.out.at(-1)?.kind?.$case, 'success');
      }
    });
  }

  it('refuses an init when the join client holds the lock (init vs join)', async () => {
    const f = fixture();
    await f.lock.acquire('join', Buffer.alloc(32, 7));
    const status = await callHandler(f.server, request());
    assert.equal(status.code, grpc.status.FAILED_PRECONDITION);
    assert.match(status.details, /node is already joining a cluster/);
    assert.equal(status.remedy, undefined, 'no init of this node to fetch later');
    assert.deepEqual(f.state.saved, []);
    assert.deepEqual(f.calls, []);
  });

  it('refuses a second init while the first is still installing components (two inits at once)', async () => {
    const gate = deferred();
    const f = fixture({
      installComponents: async () => {
        await gate.promise;
      },
    });
    const first = writer();
    const running = f.server.init(request(), first);
    await new Promise((r) => setImmediate(r));
    const second = await callHandler(f.server, request());
    assert.match(second.details, /node is already being initialized/);
    assert.equal(second.remedy, 'retry-later');
    gate.resolve();
    await running;
    assert.equal(first.out.at(-1)?.kind?.$case, 'success');
    assert.equal(f.tpm.extends.length, 1, 'only one extend of PCR 15');
  });

  it('refuses the second of two inits racing to the lock with different secrets, and only one cluster ID lands', async () => {
    const f = fixture();
    const [a, b] = [writer(), writer()];
    const results = await Promise.allSettled([f.server.init(request(), a), f.server.init(request(), b)]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected'],
    );
    assert.equal(f.tpm.extends.length, 1);
    assert.equal(a.out.at(-1)?.kind?.$case, 'success');
  });

  it('stays initializable when extending PCR 15 fails', async () => {
    const f = fixture();
    f.tpm.failExtend = new Error('TPM_RC_FAILURE');
    await assert.rejects(f.server.init(request(), writer()), /TPM_RC_FAILURE/);
    assert.equal(f.lock.holder, null);
    assert.deepEqual(f.state.saved, []);
    const w = writer();
    await f.server.init(request(), w);
    assert.equal(w.out.at(-1)?.kind?.$case, 'success');
  });
});

describe('InitServer: a step failing after the lock marks the node for reset', () => {
  const failures: { step: string; deps?: Partial<InitServerDeps>; failPhase?: string; calls: string[] }[] = [
    { step: 'persist-state', failPhase: 'initializing', calls: ['install', 'reset'] },
    {
      step: 'kubeadm-init',
      deps: {
        runKubeadmInit: async () => {
          throw new Error('kubeadm init failed at phase preflight (exit 1)');
        },
      },
      calls: ['install', 'reset'],
    },
    {
      step: 'kubeconfig',
      deps: { runKubeadmInit: async () => Buffer.from('not: [yaml') },
      calls: ['install', 'reset'],
    },
    {
      step: 'join-service',
      deps: {
        startJoinService: async () => {
          throw new Error('EADDRINUSE 0.0.0.0:30090');
        },
      },
      calls: ['install', 'kubeadm-init', 'reset'],
    },
    {
      step: 'persist-state',
      failPhase: 'bootstrapped',
      calls: ['install', 'kubeadm-init', 'join-service', 'reset'],
    },
  ];
  for (const c of failures) {
    it(`${c.step}${c.failPhase ? ` (${c.failPhase})` : ''}`, async () => {
      const f = fixture(c.deps);
      if (c.failPhase) f.state.failing.add(c.failPhase);
      const w = writer();
      await f.server.init(request(), w);
      const last = w.out.at(-1)?.kind;
      assert.equal(last?.$case, 'failure');
      if (last?.$case !== 'failure') return;
      assert.equal(last.value.step, c.step);
      assert.match(last.value.message, new RegExp(`^${c.step}: `));
      assert.ok(last.value.logs.length > 0, 'the node streams its own logs back');
      assert.equal(f.state.current?.phase, 'reset-required');
      assert.equal(f.state.current?.failedStep, c.step);
      assert.deepEqual(f.calls, c.calls);
      assert.equal(f.lock.holder, 'init', 'the lock stays taken: this boot can never init again');
      // and says so, naming the way out as data the operator's CLI turns into its reboot hint.
      assert.equal(last.value.remedy, 'reboot');
      const again = await callHandler(f.server, request());
      assert.match(again.details, new RegExp(`init failed at ${c.step} in this boot; reboot the node`));
      assert.equal(again.remedy, 'reboot');
      assert.match(last.value.message, /reboot the node/);
    });
  }

  it('still answers with the failure when marking the node for reset and kubeadm reset fail too', async () => {
    const f = fixture({
      runKubeadmInit: async () => {
        throw new Error('boom');
      },
      resetKubernetes: async () => {
        throw new Error('reset failed');
      },
    });
    f.state.failing.add('reset-required');
    const w = writer();
    await f.server.init(request(), w);
    assert.equal(w.out.at(-1)?.kind?.$case, 'failure');
    assert.ok(f.log.lines.some((l) => /cannot mark node for reset: disk full/.test(l)));
    assert.ok(f.log.lines.some((l) => /kubeadm reset failed: reset failed/.test(l)));
  });
});

describe('InitServer: the gRPC handler', () => {
  it('streams progress and the answer, then ends the call', async () => {
    const f = fixture();
    const call = fakeCall(request());
    f.server.service().init(call as never);
    await call.done;
    assert.equal(call.ended, true);
    assert.equal(call.messages.at(-1)?.kind?.$case, 'success');
  });

  it('maps an unexpected error to INTERNAL', async () => {
    const f = fixture();
    f.tpm.failExtend = new Error('TPM gone');
    const status = await callHandler(f.server, request());
    assert.equal(status.code, grpc.status.INTERNAL);
    assert.match(status.details, /TPM gone/);
  });
});

interface FakeCall {
  request: InitRequest;
  messages: InitResponse[];
  ended: boolean;
  error?: grpc.ServiceError;
  done: Promise<void>;
  write(msg: InitResponse): boolean;
  end(): void;
  emit(event: string, err: grpc.ServiceError): boolean;
}

function fakeCall(req: InitRequest): FakeCall {
  const settled = deferred();
  const call: FakeCall = {
    request: req,
    messages: [],
    ended: false,
    done: settled.promise,
    write: (msg) => call.messages.push(msg) > 0,
    end: () => {
      call.ended = true;
      settled.resolve();
    },
    emit: (_event, err) => {
      call.error = err;
      settled.resolve();
      return true;
    },
  };
  return call;
}

async function callHandler(
  server: InitServer,
  req: InitRequest,
): Promise<{ code: grpc.status; details: string; remedy?: string }> {
  const call = fakeCall(req);
  server.service().init(call as never);
  await call.done;
  if (!call.error) return { code: grpc.status.OK, details: '' };
  const remedy = call.error.metadata?.get(INIT_REMEDY_METADATA)[0];
  return {
    code: call.error.code,
    details: call.error.details,
    ...(remedy !== undefined ? { remedy: String(remedy) } : {}),
  };
}

describe('InitServer: with a state disk', () => {
  const cases: { name: string; fail?: 'kubeadm-init'; calls: string[]; answer: string }[] = [
    {
      name: 'the disk ID is the disk UUID, committed last to the key the master secret derives for it',
      calls: ['install', 'kubeadm-init', 'join-service', 'disk-commit'],
      answer: 'success',
    },
    {
      name: 'a failed kubeadm init marks the disk for reset and commits nothing',
      fail: 'kubeadm-init',
      calls: ['install', 'kubeadm-init', 'disk-mark-reset', 'reset'],
      answer: 'failure',
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const disk = new FakeDisk();
      const f = fixture({ disk });
      disk.calls = f.calls;
      if (c.fail) {
        f.deps.runKubeadmInit = async () => {
          f.calls.push('kubeadm-init');
          throw new Error('kubeadm init broke');
        };
      }
      const req = request();
      const w = writer();
      await f.server.init(req, w);
      assert.equal(w.out.at(-1)?.kind?.$case, c.answer);
      assert.deepEqual(f.calls, c.calls);
      assert.equal(f.state.saved[0]?.diskUuid, disk.uuid);
      const master = req.keySource?.$case === 'masterSecret' ? req.keySource.value : undefined;
      assert.deepEqual(disk.keys, c.fail ? [] : [deriveDiskKey(master!, disk.uuid)]);
    });
  }
});
