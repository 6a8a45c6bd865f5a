// The join client in-process against a fake JoinService on loopback (plain gRPC; the attested channel is the
// fake's, reporting the PCRs the JoinService "attested"). Every refusal before the lock leaves the node untouched;
// every step after it marks the node for reset.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { WrongDiskKeyError } from '../../../agent/disk/errors.js';
import {
  JoinClient,
  type JoinClientDeps,
  type JoinKubeadmInput,
} from '../../../agent/joinclient/join-client.js';
import { CONTROL_PLANE_CERTIFICATES } from '../../../agent/kubeadm/control-plane-certs.js';
import { JoinStopped } from '../../../agent/lifecycle/decide.js';
import type { InstanceMetadata } from '../../../agent/metadata/instance-metadata.js';
import { clusterPcrValue, NodeLock } from '../../../agent/nodelock/node-lock.js';
import type { NodeState } from '../../../agent/state/node-state.js';
import { createEphemeralIdentity, type Endpoint } from '../../../attestation/atls/index.js';
import { deriveClusterId } from '../../../common/keys.js';
import { AttestationDocument, AttesterIdentity } from '../../../gen/proto/attestation.js';
import type { IssueJoinTicketResponse } from '../../../gen/proto/join.js';
import { recordingLog } from '../../harness/recording-log.js';
import {
  bootChain,
  clusterPcrs,
  FAKE_OWNER,
  FAKE_OWNER_SEED,
  FakeDisk,
  FakeJoinService,
  FakeStateStore,
  FakeTpm,
  nodeStateIn,
  refused,
  ticketFor,
} from '../fakes.js';

/** kubeadm's shared certificates as a control-plane ticket carries them. */
const CP_FILES = CONTROL_PLANE_CERTIFICATES.map((path) => ({ path, data: Buffer.from(`pem of ${path}`) }));

/** Every file under `dir` whose content is `data`. */
async function filesHolding(dir: string, data: Buffer): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    if ((await readFile(path)).equals(data)) found.push(path);
  }
  return found;
}

let service: FakeJoinService;
let rootDir: string;
before(async () => {
  service = new FakeJoinService();
  await service.start();
  rootDir = await mkdtemp(join(tmpdir(), 'sextant-join-client-'));
});
after(async () => {
  service.server.forceShutdown();
  await rm(rootDir, { recursive: true, force: true });
});

interface Cluster {
  measurementSecret: Buffer;
  measurementSalt: Buffer;
  clusterId: Buffer;
}

function cluster(): Cluster {
  const measurementSecret = randomBytes(32);
  const measurementSalt = randomBytes(32);
  return {
    measurementSecret,
    measurementSalt,
    clusterId: deriveClusterId(measurementSecret, measurementSalt),
  };
}

/** The PCRs the fake JoinService attests: this node's boot chain and PCR 15 of `c`, unless overridden. */
function served(c: Cluster, changes: [number, Buffer][] = []): Map<number, Buffer> {
  return clusterPcrs(c.clusterId, changes);
}

interface Fixture {
  client: JoinClient;
  tpm: FakeTpm;
  lock: NodeLock;
  state: FakeStateStore;
  log: ReturnType<typeof recordingLog>;
  calls: string[];
  kubeadmInputs: JoinKubeadmInput[];
  secretFiles: Buffer[];
  rootfs: string;
}

let seq = 0;
/** The metadata of worker w-0 the join client reads; a test changes the field it is about. */
function nodeMetadata(overrides: Partial<InstanceMetadata> = {}): InstanceMetadata {
  return {
    name: 'w-0',
    role: 'worker',
    initSecretHash: '00'.repeat(32),
    advertiseAddress: '10.0.0.7',
    peers: [],
    joinEndpoints: [],
    owner: FAKE_OWNER,
    ...overrides,
  };
}

/** Metadata that carries no operator commitment (no owner key). */
function metadataWithoutOwner(): InstanceMetadata {
  const { owner: _owner, ...rest } = nodeMetadata();
  return rest;
}

async function fixture(
  servedPcrs: Map<number, Buffer>,
  overrides: Partial<JoinClientDeps> = {},
  role: 'worker' | 'control-plane' = 'worker',
): Promise<Fixture> {
  const tpm = new FakeTpm();
  for (const [i, v] of bootChain()) tpm.pcrs.set(i, v);
  const lock = new NodeLock(tpm);
  const state = new FakeStateStore();
  const log = recordingLog();
  const calls: string[] = [];
  const kubeadmInputs: JoinKubeadmInput[] = [];
  const secretFiles: Buffer[] = [];
  const rootfs = join(rootDir, `node-${seq++}`);
  const endpoint = service.endpoint;
  const deps: JoinClientDeps = {
    log,
    metadata: nodeMetadata({ role }),
    lock,
    state,
    rootfs,
    apiServerPort: 6443,
    attester: {
      identity: async () => AttesterIdentity.fromPartial({}),
      attest: async () => AttestationDocument.fromPartial({}),
    },
    serverVerifier: async () => ({}) as never,
    readPcrs: (indices) => tpm.readPcrs(indices),
    openChannel: async () => service.channel(servedPcrs),
    discover: async () => [endpoint],
    installComponents: async () => {
      calls.push('install');
    },
    runKubeadmJoin: async (input) => {
      calls.push('kubeadm-join');
      kubeadmInputs.push(input);
    },
    resetKubernetes: async () => {
      calls.push('reset');
    },
    startKubelet: async () => {
      calls.push('kubelet');
    },
    onControlPlaneJoined: async (file) => {
      calls.push('join-service');
      secretFiles.push(file);
    },
    backoff: { initialMs: 1, maxMs: 5 },
    timeoutMs: 5_000,
    ...overrides,
  };
  return { client: new JoinClient(deps), tpm, lock, state, log, calls, kubeadmInputs, secretFiles, rootfs };
}

const endpoint = (): Endpoint => service.endpoint;

describe('JoinClient.joinVia: a successful join', () => {
  it('a worker: lock with the ticket cluster ID, state, files, kubeadm join', async () => {
    const c = cluster();
    service.ticket = () => ticketFor(c);
    const f = await fixture(served(c));
    await f.client.joinVia(endpoint());
    assert.equal(f.lock.holder, 'join');
    assert.deepEqual(f.tpm.pcrs.get(15), clusterPcrValue(c.clusterId));
    assert.deepEqual(f.state.phases(), ['joining', 'bootstrapped']);
    assert.equal(f.state.current?.clusterId, c.clusterId.toString('hex'));
    assert.equal(f.state.current?.origin, 'join');
    assert.deepEqual(f.calls, ['install', 'kubeadm-join']);
    assert.deepEqual(f.kubeadmInputs[0], {
      nodeName: 'w-0',
      advertiseAddress: '10.0.0.7',
      apiServerEndpoint: '10.0.0.1:6443',
      token: 'abcdef.0123456789abcdef',
      caCertHash: `sha256:${'ab'.repeat(32)}`,
      controlPlane: false,
      bindPort: 6443,
    });
    const req = service.joinRequests.at(-1);
    assert.equal(req?.nodeName, 'w-0');
    assert.equal(req?.isControlPlane, false);
    assert.equal(req?.diskUuid, f.state.current?.diskUuid);
  });

  it("hands kubeadm join the tuning the node's metadata names", async () => {
    const c = cluster();
    service.ticket = () => ticketFor(c);
    const f = await fixture(served(c), { metadata: nodeMetadata({ kubeadmTuning: 'qemu-tcg' }) });
    await f.client.joinVia(endpoint());
    assert.equal(f.kubeadmInputs[0]?.tuning, 'qemu-tcg');
  });

  it("a control plane: writes kubeadm's shared certificates from the ticket, hands the cluster secrets on (never under pki)", async () => {
    const c = cluster();
    const secretsFile = Buffer.from('{"the":"secrets"}');
    service.ticket = () =>
      ticketFor(c, {
        isControlPlane: true,
        nodeName: 'cp-1',
        controlPlaneFiles: CP_FILES,
        clusterSecrets: secretsFile,
      });
    const f = await fixture(served(c), {}, 'control-plane');
    await f.client.joinVia(endpoint());
    assert.deepEqual(f.calls, ['install', 'kubeadm-join', 'join-service']);
    assert.deepEqual(f.secretFiles, [secretsFile]);
    assert.equal(f.kubeadmInputs[0]?.controlPlane, true);
    assert.equal('certificateKey' in (f.kubeadmInputs[0] ?? {}), false, 'nothing for kubeadm to download');
    const pki = join(f.rootfs, 'etc/kubernetes/pki');
    for (const { path, data } of CP_FILES) {
      assert.deepEqual(await readFile(join(pki, path)), data, path);
      assert.equal((await stat(join(pki, path))).mode & 0o777, path.endsWith('.key') ? 0o600 : 0o644, path);
    }
    assert.deepEqual(await filesHolding(join(f.rootfs, 'etc'), secretsFile), []);
    assert.equal(service.joinRequests.at(-1)?.isControlPlane, true);
  });

  it('a worker writes no file of its own: kubeadm join brings the CA (pinned) and the kubelet its certificate', async () => {
    const c = cluster();
    service.ticket = () => ticketFor(c);
    const f = await fixture(served(c));
    await f.client.joinVia(endpoint());
    await assert.rejects(stat(join(f.rootfs, 'etc')), /ENOENT/);
    await assert.rejects(stat(join(f.rootfs, 'var/lib/kubelet')), /ENOENT/);
  });
});

describe('JoinClient.joinVia: refusals before the lock leave the node untouched', () => {
  const refusals: {
    name: string;
    served: (c: Cluster) => Map<number, Buffer>;
    ticket?: (c: Cluster) => IssueJoinTicketResponse | grpc.ServiceError;
    deps?: Partial<JoinClientDeps>;
    error: RegExp;
  }[] = [
    {
      name: 'the JoinService booted another firmware (PCR 0)',
      served: (c) => served(c, [[0, Buffer.alloc(32, 0xee)]]),
      error: /PCR 0 differs/,
    },
    {
      name: 'the JoinService booted another UKI (PCR 11)',
      served: (c) => served(c, [[11, Buffer.alloc(32, 0xee)]]),
      error: /PCR 11 differs/,
    },
    {
      name: 'the JoinService lacks a boot PCR',
      served: (c) => {
        const m = served(c);
        m.delete(4);
        return m;
      },
      error: /PCR 4 differs/,
    },
    {
      name: 'the JoinService is of another cluster than its ticket names (PCR 15)',
      served: () => served(cluster()),
      error: /not a control plane of the cluster its ticket names \(PCR 15 differs\)/,
    },
    {
      name: 'the JoinService refuses this node',
      served: (c) => served(c),
      ticket: () => refused(grpc.status.PERMISSION_DENIED, 'PCR 4 mismatch'),
      error: /PCR 4 mismatch/,
    },
    {
      name: 'the attested channel cannot be opened',
      served: (c) => served(c),
      deps: {
        openChannel: async () => {
          throw new Error('127.0.0.1:1: verify: quote signature invalid');
        },
      },
      error: /quote signature invalid/,
    },
  ];
  for (const r of refusals) {
    it(r.name, async () => {
      const c = cluster();
      service.ticket = () => (r.ticket ? r.ticket(c) : ticketFor(c));
      const f = await fixture(r.served(c), r.deps);
      await assert.rejects(f.client.joinVia(endpoint()), (err: Error) => {
        assert.ok(!(err instanceof JoinStopped), 'a refusal is retried elsewhere, not a stop');
        assert.match(err.message, r.error);
        return true;
      });
      assert.equal(f.lock.holder, null);
      assert.equal(f.tpm.extends.length, 0);
      assert.deepEqual(f.state.saved, []);
      assert.deepEqual(f.calls, []);
    });
  }

  it('discards the ticket when the init server took the lock first (init vs join)', async () => {
    const c = cluster();
    service.ticket = () => ticketFor(c);
    const f = await fixture(served(c));
    await f.lock.acquire('init', Buffer.alloc(32, 9));
    await assert.rejects(f.client.joinVia(endpoint()), (err: Error) => {
      assert.ok(err instanceof JoinStopped);
      assert.equal(err.reason, 'lost-race');
      assert.match(err.message, /join ticket discarded: node is already being initialized/);
      return true;
    });
    assert.deepEqual(f.state.saved, []);
    assert.deepEqual(f.calls, []);
    assert.equal(f.tpm.extends.length, 1, 'only the init extend');
  });

  it('passes a TPM failure while taking the lock on, without any state', async () => {
    const c = cluster();
    service.ticket = () => ticketFor(c);
    const f = await fixture(served(c));
    f.tpm.failExtend = new Error('TPM_RC_FAILURE');
    await assert.rejects(f.client.joinVia(endpoint()), /TPM_RC_FAILURE/);
    assert.equal(f.lock.holder, null);
    assert.deepEqual(f.state.saved, []);
  });
});

describe("JoinClient.joinVia: the JoinService must prove the node's operator first", () => {
  const cases: {
    name: string;
    setup: (f: Fixture) => void;
    error: RegExp;
    metadataWithoutOwner?: boolean;
  }[] = [
    {
      name: "another operator's JoinService (its owner key is not the metadata's)",
      setup: () => {
        service.ownerSeed = Buffer.alloc(32, 0x66);
      },
      error: /JoinService 127\.0\.0\.1:\d+ does not belong to this node's operator .*; skipped/,
    },
    {
      name: 'a JoinService that holds no owner key',
      setup: () => {
        service.ownerSeed = null;
      },
      error:
        /cannot prove it belongs to this node's operator \(FAILED_PRECONDITION: .*no owner key\); skipped/,
    },
    {
      name: 'a proof made for another TLS key (relayed from another channel)',
      setup: () => {
        service.proofCertDer = otherCert;
      },
      error: /does not belong to this node's operator/,
    },
    {
      name: 'metadata without an operator commitment',
      setup: () => {},
      metadataWithoutOwner: true,
      error: /carries no operator commitment \(owner\); it joins no JoinService/,
    },
  ];
  let otherCert: Buffer;
  before(async () => {
    otherCert = (await createEphemeralIdentity()).certDer;
  });
  for (const c of cases) {
    it(`${c.name}: skipped before the node attests, asks or locks anything`, async () => {
      const cl = cluster();
      service.ticket = () => ticketFor(cl);
      const asked = service.joinRequests.length;
      const f = await fixture(served(cl), c.metadataWithoutOwner ? { metadata: metadataWithoutOwner() } : {});
      c.setup(f);
      try {
        await assert.rejects(f.client.joinVia(endpoint()), (err: Error) => {
          assert.ok(!(err instanceof JoinStopped), 'skipped: discovery goes on');
          assert.match(err.message, c.error);
          return true;
        });
      } finally {
        service.ownerSeed = FAKE_OWNER_SEED;
        service.proofCertDer = null;
      }
      assert.equal(service.joinRequests.length, asked, 'no ticket asked for');
      assert.equal(f.lock.holder, null);
      assert.equal(f.tpm.extends.length, 0);
      assert.deepEqual(f.state.saved, []);
    });
  }
});

describe('JoinClient.joinVia: a step failing after the lock marks the node for reset', () => {
  const failures: {
    step: string;
    role?: 'worker' | 'control-plane';
    failPhase?: string;
    ticket?: Partial<IssueJoinTicketResponse>;
    deps?: Partial<JoinClientDeps>;
    calls: string[];
  }[] = [
    { step: 'persist-state', failPhase: 'joining', calls: ['reset'] },
    {
      step: 'install-components',
      deps: {
        installComponents: async () => {
          throw new Error('sha256 mismatch');
        },
      },
      calls: ['reset'],
    },
    {
      step: 'write-files',
      role: 'control-plane',
      ticket: {
        controlPlaneFiles: [...CP_FILES, { path: '../../etc/passwd', data: Buffer.from('x') }],
        clusterSecrets: Buffer.from('{}'),
      },
      calls: ['install', 'reset'],
    },
    {
      // a missing shared certificate: kubeadm would make a CA of its own and split the cluster
      step: 'write-files',
      role: 'control-plane',
      ticket: { controlPlaneFiles: CP_FILES.slice(1), clusterSecrets: Buffer.from('{}') },
      calls: ['install', 'reset'],
    },
    {
      // checked before kubeadm: a control plane that could not serve joins afterwards is not made
      step: 'write-files',
      role: 'control-plane',
      ticket: { controlPlaneFiles: CP_FILES },
      calls: ['install', 'reset'],
    },
    {
      step: 'write-files',
      ticket: { controlPlaneFiles: CP_FILES },
      calls: ['install', 'reset'],
    },
    {
      step: 'kubeadm-join',
      deps: {
        runKubeadmJoin: async () => {
          throw new Error('kubeadm join failed at phase preflight');
        },
      },
      calls: ['install', 'reset'],
    },
    {
      step: 'join-service',
      role: 'control-plane',
      ticket: { controlPlaneFiles: CP_FILES, clusterSecrets: Buffer.from('{}') },
      deps: {
        onControlPlaneJoined: async () => {
          throw new Error('EADDRINUSE');
        },
      },
      calls: ['install', 'kubeadm-join', 'reset'],
    },
    { step: 'persist-state', failPhase: 'bootstrapped', calls: ['install', 'kubeadm-join', 'reset'] },
  ];
  for (const c of failures) {
    it(`${c.step}${c.failPhase ? ` (${c.failPhase})` : ''}${c.role ? ` as ${c.role}` : ''}`, async () => {
      const cl = cluster();
      service.ticket = () =>
        ticketFor(cl, { ...(c.role === 'control-plane' ? { isControlPlane: true } : {}), ...c.ticket });
      const f = await fixture(served(cl), c.deps, c.role);
      if (c.failPhase) f.state.failing.add(c.failPhase);
      await assert.rejects(f.client.joinVia(endpoint()), (err: Error) => {
        assert.ok(err instanceof JoinStopped);
        assert.equal(err.reason, 'reset-required');
        assert.match(err.message, new RegExp(`^join failed at ${c.step}: `));
        return true;
      });
      assert.equal(f.state.current?.phase, 'reset-required');
      assert.equal(f.state.current?.failedStep, c.step);
      assert.deepEqual(f.calls, c.calls);
      assert.equal(f.lock.holder, 'join');
    });
  }
});

describe('JoinClient.run', () => {
  it('retries through failing discovery and refusing endpoints, with one disk UUID for every attempt', async () => {
    const c = cluster();
    let attempts = 0;
    service.ticket = () => {
      attempts++;
      return attempts < 3 ? refused(grpc.status.UNAVAILABLE, 'busy') : ticketFor(c);
    };
    let discoveries = 0;
    const before = service.joinRequests.length;
    const f = await fixture(served(c), {
      discover: async () => {
        discoveries++;
        if (discoveries === 1) throw new Error('mDNS socket closed');
        if (discoveries === 2) return [];
        return [endpoint()];
      },
    });
    await f.client.run();
    assert.equal(f.state.current?.phase, 'bootstrapped');
    const disks = new Set(service.joinRequests.slice(before).map((r) => r.diskUuid));
    assert.equal(disks.size, 1, 'one disk UUID across attempts');
    assert.equal(f.state.current?.diskUuid, [...disks][0]);
    assert.ok(f.log.lines.some((l) => /discovery failed: mDNS socket closed/.test(l)));
    assert.ok(f.log.lines.some((l) => /no JoinService found yet/.test(l)));
  });

  it('stops as lost-race when the init server holds the lock', async () => {
    const f = await fixture(served(cluster()), { discover: async () => [] });
    await f.lock.acquire('init', Buffer.alloc(32, 1));
    await assert.rejects(
      f.client.run(),
      (err: Error) => err instanceof JoinStopped && err.reason === 'lost-race',
    );
  });

  it('stops when a join step failed (reset-required), without further attempts', async () => {
    const c = cluster();
    service.ticket = () => ticketFor(c);
    const f = await fixture(served(c), {
      runKubeadmJoin: async () => {
        throw new Error('boom');
      },
    });
    const before = service.joinRequests.length;
    await assert.rejects(
      f.client.run(),
      (err: Error) => err instanceof JoinStopped && err.reason === 'reset-required',
    );
    assert.equal(service.joinRequests.length - before, 1);
  });

  it('stops when aborted before it starts and while it waits', async () => {
    const f = await fixture(served(cluster()), { discover: async () => [] });
    await assert.rejects(
      f.client.run(AbortSignal.abort()),
      (err: Error) => err instanceof JoinStopped && err.reason === 'aborted',
    );
    const abort = new AbortController();
    const g = await fixture(served(cluster()), {
      discover: async () => [],
      backoff: { initialMs: 60_000, maxMs: 60_000 },
    });
    const running = g.client.run(abort.signal);
    setTimeout(() => abort.abort(), 20);
    await assert.rejects(running, (err: Error) => err instanceof JoinStopped && err.reason === 'aborted');
  });
});

describe('JoinClient.rejoin', () => {
  function nodeState(c: Cluster, overrides: Partial<NodeState> = {}): NodeState {
    return {
      version: 1,
      phase: 'bootstrapped',
      role: 'worker',
      origin: 'join',
      clusterId: c.clusterId.toString('hex'),
      measurementSalt: c.measurementSalt.toString('hex'),
      diskUuid: '3b0b8c2e-2c2a-4a0e-9f7e-0d7b1b6f0a11',
      updatedAt: new Date(0).toISOString(),
      ...overrides,
    };
  }

  it('after a reboot: gets the ticket for its own disk, extends PCR 15 again and starts kubelet', async () => {
    const c = cluster();
    service.rejoinTicket = () => ({ stateDiskKey: randomBytes(32), measurementSecret: c.measurementSecret });
    const f = await fixture(served(c));
    const ticket = await f.client.rejoin(nodeState(c));
    assert.deepEqual(ticket.measurementSecret, c.measurementSecret);
    assert.equal(service.rejoinDisks.at(-1), '3b0b8c2e-2c2a-4a0e-9f7e-0d7b1b6f0a11');
    assert.deepEqual(f.tpm.pcrs.get(15), clusterPcrValue(c.clusterId));
    assert.deepEqual(f.calls, ['kubelet']);
    assert.deepEqual(f.state.saved, [], 'a rejoin never rewrites the state');
  });

  it('after an agent restart in the same boot: PCR 15 already shows the cluster, nothing extended', async () => {
    const c = cluster();
    service.rejoinTicket = () => ({ stateDiskKey: randomBytes(32), measurementSecret: c.measurementSecret });
    const f = await fixture(served(c));
    await f.tpm.extendPcr(15, c.clusterId);
    f.tpm.extends = [];
    await f.client.rejoin(nodeState(c));
    assert.equal(f.tpm.extends.length, 0);
    assert.equal(f.lock.holder, 'join');
  });

  const stops: {
    name: string;
    setup: (c: Cluster, f: Fixture) => Promise<void>;
    ticket: (c: Cluster) => Buffer;
    error: RegExp;
  }[] = [
    {
      name: 'the ticket names another cluster',
      setup: async () => {},
      ticket: () => randomBytes(32),
      error: /rejoin ticket names another cluster/,
    },
    {
      name: 'PCR 15 shows another cluster in this boot',
      setup: async (_c, f) => {
        await f.tpm.extendPcr(15, Buffer.alloc(32, 0x55));
      },
      ticket: (c) => c.measurementSecret,
      error: /PCR 15 shows another cluster than this node joined; node needs reset/,
    },
  ];
  for (const s of stops) {
    it(`stops for reset when ${s.name}, without starting kubelet`, async () => {
      const c = cluster();
      service.rejoinTicket = () => ({ stateDiskKey: randomBytes(32), measurementSecret: s.ticket(c) });
      const f = await fixture(served(c));
      await s.setup(c, f);
      await assert.rejects(f.client.rejoin(nodeState(c)), (err: Error) => {
        assert.ok(err instanceof JoinStopped);
        assert.equal(err.reason, 'reset-required');
        assert.match(err.message, s.error);
        return true;
      });
      assert.deepEqual(f.calls, []);
    });
  }

  it('keeps trying while JoinServices refuse or are of another cluster, until aborted', async () => {
    const c = cluster();
    let n = 0;
    service.rejoinTicket = () => {
      n++;
      return n === 1
        ? refused(grpc.status.PERMISSION_DENIED, 'disk_uuid is not the disk this node joined with')
        : { stateDiskKey: randomBytes(32), measurementSecret: c.measurementSecret };
    };
    const f = await fixture(served(cluster()));
    const abort = new AbortController();
    const running = f.client.rejoin(nodeState(c), abort.signal);
    while (n < 3) await new Promise((r) => setTimeout(r, 5));
    abort.abort();
    await assert.rejects(running, (err: Error) => err instanceof JoinStopped && err.reason === 'aborted');
    assert.ok(f.log.lines.some((l) => /disk_uuid is not the disk/.test(l)));
    assert.ok(
      f.log.lines.some((l) => /not a control plane of this node's cluster \(PCR 15 differs\)/.test(l)),
    );
    assert.deepEqual(f.calls, []);
    // PCR 15 is restored once, before asking: a JoinService gives a disk key only to a node whose quote shows it.
    assert.deepEqual(
      f.tpm.extends.map((e) => e.index),
      [15],
    );
    assert.deepEqual(f.tpm.pcrs.get(15), clusterPcrValue(c.clusterId));
  });
});

describe('JoinClient with a state disk', () => {
  const joins: { name: string; ticket: Partial<IssueJoinTicketResponse>; fail?: boolean; calls: string[] }[] =
    [
      {
        name: "a join commits the disk to the ticket's key, after kubeadm join, under the disk's own ID",
        ticket: {},
        calls: ['install', 'kubeadm-join', 'disk-commit'],
      },
      {
        name: 'a failed kubeadm join marks the disk for reset and commits nothing',
        ticket: {},
        fail: true,
        calls: ['install', 'kubeadm-join', 'disk-mark-reset', 'reset'],
      },
      {
        name: 'a ticket without a disk key is refused before the lock',
        ticket: { stateDiskKey: Buffer.alloc(0) },
        calls: [],
      },
    ];
  for (const j of joins) {
    it(j.name, async () => {
      const c = cluster();
      service.ticket = () => ticketFor(c, j.ticket);
      const disk = new FakeDisk();
      const f = await fixture(served(c), {
        disk,
        diskId: async () => disk.uuid,
        ...(j.fail
          ? {
              runKubeadmJoin: async () => {
                f.calls.push('kubeadm-join');
                throw new Error('kubeadm join broke');
              },
            }
          : {}),
      });
      disk.calls = f.calls;
      const run = f.client.joinVia(endpoint());
      if (j.fail) await assert.rejects(run, JoinStopped);
      else if (j.calls.length === 0)
        await assert.rejects(
          run,
          /^Error: disk key: expected 32 bytes for state disk 5f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5, got 0$/,
        );
      else await run;
      assert.deepEqual(f.calls, j.calls);
      assert.equal(service.joinRequests.at(-1)?.diskUuid, disk.uuid);
      assert.deepEqual(disk.keys, j.calls.includes('disk-commit') ? [Buffer.alloc(32, 0x11)] : []);
      if (j.calls.length === 0) assert.equal(f.lock.holder, null);
    });
  }

  const stateOf = (c: Cluster): NodeState => ({
    ...nodeStateIn('bootstrapped'),
    clusterId: c.clusterId.toString('hex'),
    measurementSalt: c.measurementSalt.toString('hex'),
  });

  it("a rejoin opens the disk with the rejoin ticket's key before kubelet starts", async () => {
    const c = cluster();
    const key = randomBytes(32);
    service.rejoinTicket = () => ({ stateDiskKey: key, measurementSecret: c.measurementSecret });
    const opened: Buffer[] = [];
    const f = await fixture(served(c), {
      unlockDisk: async (k) => {
        f.calls.push('unlock');
        opened.push(k);
      },
    });
    await f.client.rejoin(stateOf(c));
    assert.deepEqual(f.calls, ['unlock', 'kubelet']);
    assert.deepEqual(opened, [key]);
  });

  it('a wrong rejoin key ends the rejoin with the disk untouched: no retry, no kubelet', async () => {
    const c = cluster();
    let asked = 0;
    service.rejoinTicket = () => {
      asked++;
      return { stateDiskKey: randomBytes(32), measurementSecret: c.measurementSecret };
    };
    const f = await fixture(served(c), {
      unlockDisk: async () => {
        throw new WrongDiskKeyError('/dev/vdb');
      },
    });
    await assert.rejects(f.client.rejoin(stateOf(c)), (err: Error) => {
      assert.ok(err instanceof WrongDiskKeyError);
      assert.match(err.message, /does not open \/dev\/vdb .*left as it was/);
      return true;
    });
    assert.equal(asked, 1);
    assert.deepEqual(f.calls, []);
  });
});
