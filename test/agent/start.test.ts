// startAgent wired with fakes: the boot paths (fresh, reset, rejoin of a worker and of a control plane,
// reboot-required), init vs join through the composed parts, every failure to start, and stop/abort.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SealedInitReply } from '../../agent/initserver/init-reply.js';
import type { InitServer } from '../../agent/initserver/init-server.js';
import { CONTROL_PLANE_CERTIFICATES } from '../../agent/kubeadm/control-plane-certs.js';
import { clusterPcrValue } from '../../agent/nodelock/node-lock.js';
import { type Platform, startAgent } from '../../agent/start.js';
import {
  type ClusterSecrets,
  parseClusterSecrets,
  serializeClusterSecrets,
} from '../../agent/state/cluster-secrets.js';
import type { NodeState } from '../../agent/state/node-state.js';
import { deriveClusterId, deriveMeasurementSecret } from '../../common/keys.js';
import { AttestationDocument, AttesterIdentity } from '../../gen/proto/attestation.js';
import type { InitRequest, InitResponse } from '../../gen/proto/init.js';
import { recordingLog } from '../harness/recording-log.js';
import {
  bootChain,
  clusterPcrs,
  deferred,
  FAKE_OWNER,
  FakeJoinService,
  FakeKubeadm,
  FakeStateStore,
  FakeTpm,
  fakeClusterSecrets,
  nodeStateIn,
  ticketFor,
  validInitRequest,
} from './fakes.js';

const initSecret = randomBytes(32);
const DISK_ID = '7f1c2a4e-0b3d-4c5e-8f6a-1b2c3d4e5f60';
let service: FakeJoinService;
let rootfs: string;
before(async () => {
  service = new FakeJoinService();
  await service.start();
  rootfs = await mkdtemp(join(tmpdir(), 'sextant-start-'));
});
after(async () => {
  service.server.forceShutdown();
  await rm(rootfs, { recursive: true, force: true });
});

function clusterIdOf(s: ClusterSecrets): Buffer {
  return deriveClusterId(deriveMeasurementSecret(s.masterSecret), s.measurementSalt);
}

function bootstrapped(role: 'worker' | 'control-plane', clusterId: Buffer, salt: Buffer): NodeState {
  return {
    ...nodeStateIn('bootstrapped'),
    role,
    origin: role === 'control-plane' ? 'init' : 'join',
    clusterId: clusterId.toString('hex'),
    measurementSalt: salt.toString('hex'),
  };
}

interface Harness {
  platform: Platform;
  tpm: FakeTpm;
  state: FakeStateStore;
  kubeadm: FakeKubeadm;
  log: ReturnType<typeof recordingLog>;
  events: string[];
  secrets: { stored: ClusterSecrets | null };
  initServer: () => InitServer;
  metadataReads: () => number;
  ready: () => number;
  /** The reasons the agent gave each time it asked for a reboot (the real platform exits then). */
  reboots: string[];
}

function harness(
  overrides: Partial<Platform> = {},
  role: 'worker' | 'control-plane' = 'control-plane',
): Harness {
  const tpm = new FakeTpm();
  for (const [i, v] of bootChain()) tpm.pcrs.set(i, v);
  const state = new FakeStateStore();
  const kubeadm = new FakeKubeadm();
  const log = recordingLog();
  const events: string[] = [];
  const secrets = { stored: null as ClusterSecrets | null };
  let initServer: InitServer | undefined;
  let metadataReads = 0;
  let ready = 0;
  const reboots: string[] = [];
  let keptReply: SealedInitReply | undefined;
  const platform: Platform = {
    log,
    tpm,
    state,
    secrets: {
      load: async () => secrets.stored,
      adopt: async (file) => {
        secrets.stored = parseClusterSecrets('ticket', file.toString());
        return secrets.stored;
      },
    },
    metadata: async () => {
      metadataReads++;
      return {
        name: 'node-0',
        role,
        initSecretHash: createHash('sha256').update(initSecret).digest('hex'),
        advertiseAddress: '10.0.0.5',
        peers: [],
        joinEndpoints: [],
        owner: FAKE_OWNER,
      };
    },
    kubeadm,
    kubelet: {
      start: async () => {
        events.push('kubelet');
      },
    },
    installComponents: async () => {
      events.push('install');
    },
    attester: {
      identity: async () => AttesterIdentity.fromPartial({}),
      attest: async () => AttestationDocument.fromPartial({}),
    },
    joinServiceVerifier: async () => ({}) as never,
    openChannel: async () => {
      throw new Error('no JoinService in this test');
    },
    discover: async () => [],
    checkMeasurements: () => {},
    serveNode: async (init) => {
      if (init) initServer = init;
      events.push(init ? 'serve init+attestation' : 'serve attestation');
      return {
        port: 9000,
        close: async () => {
          events.push('close node server');
        },
      };
    },
    startJoinService: async (s) => {
      secrets.stored = s;
      events.push('join service');
      return {
        port: 30090,
        close: async () => {
          events.push('close join service');
        },
      };
    },
    apiServerPort: 6443,
    rootfs,
    stateDir: join(rootfs, 'state'),
    ready: () => {
      ready++;
    },
    joinBackoff: { initialMs: 1, maxMs: 5 },
    rebootRequired: (reason) => {
      reboots.push(reason);
    },
    initReplies: {
      load: async () => keptReply,
      save: async (sealed) => {
        keptReply = sealed;
      },
    },
    diskId: async () => DISK_ID,
    ...overrides,
  };
  return {
    platform,
    tpm,
    state,
    kubeadm,
    log,
    events,
    secrets,
    initServer: () => {
      if (!initServer) throw new Error('no init server was served');
      return initServer;
    },
    metadataReads: () => metadataReads,
    ready: () => ready,
    reboots,
  };
}

/** Platform parts that reach the fake JoinService, which attests this node's boot chain and `clusterId`. */
function joinServiceAt(clusterId: Buffer): Partial<Platform> {
  return {
    discover: async () => [service.endpoint],
    openChannel: async () => service.channel(clusterPcrs(clusterId)),
  };
}

async function init(
  h: Harness,
  req: InitRequest = validInitRequest({ initSecret }),
): Promise<InitResponse[]> {
  const out: InitResponse[] = [];
  await h.initServer().init(req, { write: (m) => out.push(m) > 0 });
  return out;
}

describe('startAgent: a fresh node', () => {
  it('serves init and attestation, runs the join client beside it, and says it is ready', async () => {
    let discoveries = 0;
    const h = harness({
      discover: async () => {
        discoveries++;
        return [];
      },
    });
    const agent = await startAgent(h.platform);
    assert.equal(agent.boot, 'fresh');
    assert.deepEqual(h.events, ['serve init+attestation']);
    assert.equal(h.ready(), 1);
    while (discoveries < 2) await new Promise((r) => setTimeout(r, 2));
    assert.ok(h.log.lines.some((l) => /info boot decision: fresh/.test(l)));
    assert.ok(h.log.lines.some((l) => /info init server listening \{"port":9000\}/.test(l)));
    await agent.stop();
    await agent.joinClientDone;
    assert.deepEqual(h.events, ['serve init+attestation', 'close node server']);
    assert.ok(h.log.lines.some((l) => /join client stopped/.test(l)));
  });

  it('init wins: the cluster is made, the JoinService starts, the join client steps back', async () => {
    const h = harness();
    const agent = await startAgent(h.platform);
    const out = await init(h);
    assert.equal(out.at(-1)?.kind?.$case, 'success');
    await agent.joinClientDone;
    assert.ok(h.log.lines.some((l) => /this node is being initialized; join client stops/.test(l)));
    assert.deepEqual(h.state.phases(), ['initializing', 'bootstrapped']);
    assert.deepEqual(h.events, ['serve init+attestation', 'install', 'join service']);
    assert.deepEqual(h.kubeadm.calls, ['init', 'admin']);
    assert.match(h.kubeadm.configs[0] ?? '', /kind: InitConfiguration/);
    await agent.stop();
    assert.deepEqual(h.events.slice(-2), ['close join service', 'close node server']);
  });

  it('two inits at once: one cluster, the other refused', async () => {
    const gate = deferred();
    const h = harness({
      installComponents: async () => {
        await gate.promise;
      },
    });
    const agent = await startAgent(h.platform);
    const first = init(h);
    await new Promise((r) => setImmediate(r));
    await assert.rejects(init(h), /node is already being initialized/);
    gate.resolve();
    assert.equal((await first).at(-1)?.kind?.$case, 'success');
    assert.equal(h.tpm.extends.filter((e) => e.index === 15).length, 1);
    await agent.stop();
  });

  it('join wins: the node joins through a JoinService, and an init afterwards is refused', async () => {
    const secrets = fakeClusterSecrets();
    const measurementSecret = deriveMeasurementSecret(secrets.masterSecret);
    const clusterId = clusterIdOf(secrets);
    service.ticket = () =>
      ticketFor(
        { measurementSecret, measurementSalt: secrets.measurementSalt },
        {
          isControlPlane: true,
          nodeName: 'node-0',
          controlPlaneFiles: CONTROL_PLANE_CERTIFICATES.map((path) => ({ path, data: Buffer.from(path) })),
          clusterSecrets: Buffer.from(serializeClusterSecrets(secrets)),
        },
      );
    const h = harness(joinServiceAt(clusterId));
    const agent = await startAgent(h.platform);
    await agent.joinClientDone;
    assert.ok(h.log.lines.some((l) => /join client finished: node joined/.test(l)));
    assert.deepEqual(h.state.phases(), ['joining', 'bootstrapped']);
    assert.deepEqual(h.kubeadm.calls, ['join']);
    assert.match(h.kubeadm.configs[0] ?? '', /kind: JoinConfiguration/);
    assert.match(h.kubeadm.configs[0] ?? '', /controlPlane:/);
    assert.deepEqual(h.secrets.stored, secrets, 'the ticket secrets adopted and served');
    assert.ok(h.events.includes('join service'));
    await assert.rejects(init(h), /node is already joining a cluster/);
    await agent.stop();
  });

  it('a join that fails after the lock marks the node for reset and asks for a reboot; init is refused', async () => {
    const secrets = fakeClusterSecrets();
    const clusterId = clusterIdOf(secrets);
    service.ticket = () =>
      ticketFor({
        measurementSecret: deriveMeasurementSecret(secrets.masterSecret),
        measurementSalt: secrets.measurementSalt,
      });
    const h = harness(joinServiceAt(clusterId), 'worker');
    h.kubeadm.fail.join = new Error('kubeadm join failed at phase kubelet-start (exit 1)');
    const agent = await startAgent(h.platform);
    await agent.joinClientDone;
    assert.equal(h.state.current?.phase, 'reset-required');
    assert.equal(h.state.current?.failedStep, 'kubeadm-join');
    assert.deepEqual(h.kubeadm.calls, ['join', 'reset']);
    assert.equal(h.reboots.length, 1);
    assert.match(h.reboots[0] ?? '', /^join failed at kubeadm-join: .*; reboot the node to join again$/);
    await assert.rejects(init(h), /node is already joining a cluster/);
    await agent.stop();
  });
});

describe('startAgent: reset and reboot-required', () => {
  it('an interrupted bootstrap with PCR 15 zero is cleaned up and the node starts fresh', async () => {
    const h = harness();
    h.state.current = { ...bootstrapped('worker', randomBytes(32), randomBytes(32)), phase: 'joining' };
    const agent = await startAgent(h.platform);
    assert.equal(agent.boot, 'reset');
    assert.deepEqual(h.kubeadm.calls, ['reset']);
    assert.equal(h.state.cleared, 1);
    assert.deepEqual(h.events, ['serve init+attestation']);
    assert.ok(h.log.lines.some((l) => /stale bootstrap state removed/.test(l)));
    await agent.stop();
  });

  it('a failing kubeadm reset is logged and the node still starts fresh', async () => {
    const h = harness();
    h.state.current = {
      ...bootstrapped('worker', randomBytes(32), randomBytes(32)),
      phase: 'reset-required',
    };
    h.kubeadm.fail.reset = new Error('kubeadm missing');
    const agent = await startAgent(h.platform);
    assert.ok(h.log.lines.some((l) => /warn kubeadm reset: kubeadm missing/.test(l)));
    assert.equal(h.state.cleared, 1);
    await agent.stop();
  });

  const refusals: { name: string; setup: (h: Harness) => Promise<void>; error: RegExp }[] = [
    {
      name: 'PCR 15 extended without any state',
      setup: async (h) => {
        await h.tpm.extendPcr(15, randomBytes(32));
      },
      error: /PCR 15 is already extended but this node holds no state; reboot the node/,
    },
    {
      name: 'an interrupted join in the same boot',
      setup: async (h) => {
        h.state.current = { ...bootstrapped('worker', randomBytes(32), randomBytes(32)), phase: 'joining' };
        await h.tpm.extendPcr(15, randomBytes(32));
      },
      error: /a join was interrupted; reboot the node/,
    },
  ];
  for (const r of refusals) {
    it(`refuses to start: ${r.name}, serving nothing`, async () => {
      const h = harness();
      await r.setup(h);
      await assert.rejects(startAgent(h.platform), r.error);
      assert.deepEqual(h.events, []);
      assert.equal(h.ready(), 0);
      assert.deepEqual(h.kubeadm.calls, []);
    });
  }
});

describe('startAgent: a bootstrapped node', () => {
  it('a control plane with its secrets resumes on its own: PCR 15, JoinService, kubelet, the init port again', async () => {
    const h = harness();
    const secrets = fakeClusterSecrets();
    h.secrets.stored = secrets;
    h.state.current = bootstrapped('control-plane', clusterIdOf(secrets), secrets.measurementSalt);
    const agent = await startAgent(h.platform);
    assert.equal(agent.boot, 'rejoin');
    assert.deepEqual(h.tpm.pcrs.get(15), clusterPcrValue(clusterIdOf(secrets)));
    // The init port serves again: attestation, and the owner's repeated init answered.
    assert.deepEqual(h.events, ['join service', 'kubelet', 'serve init+attestation']);
    assert.ok(h.log.lines.some((l) => /info control plane resumed/.test(l)));
    assert.equal(h.ready(), 1);
    await agent.stop();
    assert.deepEqual(h.events.at(-1), 'close join service');
  });

  it('a worker rejoins through a JoinService, then serves attestation only', async () => {
    const secrets = fakeClusterSecrets();
    const clusterId = clusterIdOf(secrets);
    const measurementSecret = deriveMeasurementSecret(secrets.masterSecret);
    service.rejoinTicket = () => ({ stateDiskKey: randomBytes(32), measurementSecret });
    const h = harness(joinServiceAt(clusterId), 'worker');
    h.state.current = bootstrapped('worker', clusterId, secrets.measurementSalt);
    const agent = await startAgent(h.platform);
    assert.equal(agent.boot, 'rejoin');
    assert.deepEqual(h.events, ['kubelet', 'serve attestation']);
    assert.deepEqual(h.tpm.pcrs.get(15), clusterPcrValue(clusterId));
    assert.deepEqual(h.kubeadm.calls, [], 'no second kubeadm join');
    await agent.stop();
  });

  it('a rejoin in progress stops when the agent is stopped (abort)', async () => {
    const h = harness({}, 'worker');
    h.state.current = bootstrapped('worker', randomBytes(32), randomBytes(32));
    const abort = new AbortController();
    const starting = startAgent(h.platform, abort.signal);
    setTimeout(() => abort.abort(), 20);
    await assert.rejects(starting, /rejoin stopped/);
    assert.equal(h.ready(), 0);
  });

  const refusals: { name: string; setup: (h: Harness, s: ClusterSecrets) => Promise<void>; error: RegExp }[] =
    [
      {
        name: 'its secrets name another cluster than its state',
        setup: async (h, s) => {
          h.state.current = bootstrapped('control-plane', randomBytes(32), s.measurementSalt);
        },
        error: /cluster secrets do not match the node state/,
      },
      {
        name: 'PCR 15 shows another cluster',
        setup: async (h, s) => {
          h.state.current = bootstrapped('control-plane', clusterIdOf(s), s.measurementSalt);
          await h.tpm.extendPcr(15, randomBytes(32));
        },
        error: /PCR 15 shows another cluster than this node joined; reboot required/,
      },
    ];
  for (const r of refusals) {
    it(`a control plane refuses to resume when ${r.name}`, async () => {
      const h = harness();
      const secrets = fakeClusterSecrets();
      h.secrets.stored = secrets;
      await r.setup(h, secrets);
      await assert.rejects(startAgent(h.platform), r.error);
      assert.deepEqual(h.events, []);
    });
  }
});

describe('startAgent: a failure to start stops what started', () => {
  const failures: {
    name: string;
    setup: (h: Harness) => Partial<Platform> | undefined;
    error: RegExp;
    events: string[];
  }[] = [
    {
      name: 'the TPM cannot be read',
      setup: (h) => {
        h.tpm.failRead = new Error('TCTI swtpm: connection refused');
        return undefined;
      },
      error: /connection refused/,
      events: [],
    },
    {
      name: 'the metadata cannot be read',
      setup: () => ({
        metadata: async () => {
          throw new Error('instance metadata file:///x: cannot read: ENOENT');
        },
      }),
      error: /instance metadata .*ENOENT/,
      events: [],
    },
    {
      name: 'the node state cannot be read',
      setup: (h) => {
        h.state.loadError = new Error(
          'node-state.json: phase: expected initializing, joining, bootstrapped or reset-required',
        );
        return undefined;
      },
      error: /phase: expected/,
      events: [],
    },
    {
      name: 'the init port is taken',
      setup: () => ({
        serveNode: async () => {
          throw new Error('No address added out of total 1 resolved');
        },
      }),
      error: /No address added/,
      events: [],
    },
    {
      name: 'kubelet does not start after the JoinService did (control plane resume)',
      setup: (h) => {
        const s = fakeClusterSecrets();
        h.secrets.stored = s;
        h.state.current = bootstrapped('control-plane', clusterIdOf(s), s.measurementSalt);
        return {
          kubelet: {
            start: async () => {
              throw new Error('starting kubelet (systemctl start kubelet): exit 1');
            },
          },
        };
      },
      error: /starting kubelet/,
      events: ['join service', 'close join service'],
    },
  ];
  for (const f of failures) {
    it(f.name, async () => {
      const h = harness();
      const extra = f.setup(h);
      if (extra) Object.assign(h.platform, extra);
      await assert.rejects(startAgent(h.platform), f.error);
      assert.deepEqual(h.events, f.events);
      assert.equal(h.ready(), 0);
    });
  }

  it('reads the metadata once at start; discovery reads it through its own source', async () => {
    const h = harness();
    const agent = await startAgent(h.platform);
    assert.equal(h.metadataReads(), 1);
    await agent.stop();
  });
});
