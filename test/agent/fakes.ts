import 'reflect-metadata';
// Fakes for the agent's neighbours, shared by the in-process tables: no root, no swtpm, no network namespace.
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { BOOT_PCRS } from '../../agent/joinclient/join-client.js';
import type { AdmissionRecord } from '../../agent/joinservice/audit-log.js';
import type { Kubeadm } from '../../agent/kubeadm/driver.js';
import type { BootstrapToken, BootstrapTokens } from '../../agent/kubernetes/bootstrap-token.js';
import type { Step } from '../../agent/lifecycle/phases.js';
import { clusterPcrValue } from '../../agent/nodelock/node-lock.js';
import type { ClusterSecrets } from '../../agent/state/cluster-secrets.js';
import type { NodePhase, NodeState, NodeStateStore } from '../../agent/state/node-state.js';
import { type AttestedChannel, createEphemeralIdentity, spkiOf } from '../../attestation/atls/index.js';
import { ownerPublicKeyText, proveOwner } from '../../common/contracts/owner.js';
import { deriveClusterId, deriveMeasurementSecret } from '../../common/keys.js';
import { formatEndpoint } from '../../common/net.js';
import { Challenge } from '../../gen/proto/attestation.js';
import type { InitRequest } from '../../gen/proto/init.js';
import {
  type IssueJoinTicketRequest,
  IssueJoinTicketResponse,
  type IssueRejoinTicketResponse,
  JoinServiceService,
  type OwnerChallenge,
  type OwnerProof,
} from '../../gen/proto/join.js';

/** A PCR bank that extends like a TPM does (SHA-256 of old ‖ digest); `failExtend` makes the next extend throw. */
export class FakeTpm {
  readonly pcrs = new Map<number, Buffer>();
  extends: { index: number; digest: Buffer }[] = [];
  failExtend: Error | null = null;
  failRead: Error | null = null;

  constructor() {
    for (let i = 0; i < 24; i++) this.pcrs.set(i, Buffer.alloc(32));
  }

  async readPcrs(indices: readonly number[] = [...this.pcrs.keys()]): Promise<Map<number, Buffer>> {
    await Promise.resolve();
    if (this.failRead) throw this.failRead;
    return new Map(indices.map((i) => [i, Buffer.from(this.pcrs.get(i) ?? Buffer.alloc(32))]));
  }

  async extendPcr(index: number, digest: Buffer): Promise<void> {
    // An await before the effect, as the real binding has: the lock's check-and-set must not rely on timing.
    await Promise.resolve();
    if (this.failExtend) {
      const err = this.failExtend;
      this.failExtend = null;
      throw err;
    }
    this.extends.push({ index, digest });
    const old = this.pcrs.get(index) ?? Buffer.alloc(32);
    this.pcrs.set(index, createHash('sha256').update(old).update(digest).digest());
  }
}

type SaveInput = Parameters<NodeStateStore['save']>[0];

/** A joined worker's node state in `phase` (with the step that failed, if any). */
export function nodeStateIn(phase: NodePhase, failedStep?: Step): NodeState {
  return {
    version: 1,
    phase,
    role: 'worker',
    origin: 'join',
    clusterId: 'ab'.repeat(32),
    measurementSalt: 'cd'.repeat(32),
    diskUuid: '3b0b8c2e-2c2a-4a0e-9f7e-0d7b1b6f0a11',
    ...(failedStep ? { failedStep } : {}),
    updatedAt: new Date(0).toISOString(),
  };
}

/** The node-state store in memory; a phase in `failing` makes saving that phase throw. */
export class FakeStateStore implements Pick<NodeStateStore, 'load' | 'save' | 'clear'> {
  current: NodeState | null = null;
  saved: SaveInput[] = [];
  cleared = 0;
  failing = new Set<string>();
  loadError: Error | null = null;

  async load(): Promise<NodeState | null> {
    if (this.loadError) throw this.loadError;
    return this.current;
  }

  async save(state: SaveInput): Promise<NodeState> {
    await Promise.resolve();
    if (this.failing.has(state.phase)) throw new Error(`disk full while saving ${state.phase}`);
    this.saved.push(state);
    this.current = { version: 1, ...state, updatedAt: new Date(0).toISOString() };
    return this.current;
  }

  async clear(): Promise<void> {
    this.cleared++;
    this.current = null;
  }

  phases(): string[] {
    return this.saved.map((s) => (s.failedStep ? `${s.phase}@${s.failedStep}` : s.phase));
  }
}

/** The state disk as the bootstrap sees it: records commits (with their key) and marks; `fail[call]` throws. */
export class FakeDisk {
  readonly uuid = '5f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5';
  calls: string[] = [];
  keys: Buffer[] = [];
  fail: Partial<Record<'commit' | 'markForReset', Error>> = {};

  async commit(diskKey: Buffer): Promise<void> {
    await Promise.resolve();
    this.calls.push('disk-commit');
    if (this.fail.commit) throw this.fail.commit;
    this.keys.push(Buffer.from(diskKey));
  }
  async markForReset(): Promise<void> {
    await Promise.resolve();
    this.calls.push('disk-mark-reset');
    if (this.fail.markForReset) throw this.fail.markForReset;
  }
}

/** kubeadm that records its calls; `fail[command]` makes that command throw. */
export class FakeKubeadm implements Kubeadm {
  calls: string[] = [];
  configs: string[] = [];
  fail: Partial<Record<'init' | 'join' | 'reset' | 'admin', Error>> = {};
  adminConf = Buffer.from(
    'apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\n',
  );

  async init(configYaml: string): Promise<void> {
    this.calls.push('init');
    this.configs.push(configYaml);
    if (this.fail.init) throw this.fail.init;
  }
  async join(configYaml: string): Promise<void> {
    this.calls.push('join');
    this.configs.push(configYaml);
    if (this.fail.join) throw this.fail.join;
  }
  async reset(): Promise<void> {
    this.calls.push('reset');
    if (this.fail.reset) throw this.fail.reset;
  }
  async adminKubeconfig(): Promise<Buffer> {
    this.calls.push('admin');
    if (this.fail.admin) throw this.fail.admin;
    return this.adminConf;
  }
}

/** Bootstrap tokens in memory: what was created (for whom) and deleted, in order. */
export class FakeBootstrapTokens implements BootstrapTokens {
  calls: string[] = [];
  live = new Map<string, string>();
  fail: Partial<Record<'create' | 'delete', Error>> = {};
  #seq = 0;

  async create(description: string): Promise<BootstrapToken> {
    this.calls.push(`create ${description}`);
    if (this.fail.create) throw this.fail.create;
    const id = `tok${String(this.#seq++).padStart(3, '0')}`;
    this.live.set(id, description);
    return { id, token: `${id}.0123456789abcdef`, expires: new Date(Date.now() + 1800_000) };
  }
  async delete(id: string): Promise<void> {
    this.calls.push(`delete ${id}`);
    if (this.fail.delete) throw this.fail.delete;
    this.live.delete(id);
  }
}

/** The boot chain of the fake node (PCR i holds bytes i+1), as its TPM and a JoinService attesting it read it. */
export function bootChain(): Map<number, Buffer> {
  return new Map(BOOT_PCRS.map((i) => [i, Buffer.alloc(32, i + 1)]));
}

/** The PCRs a JoinService of cluster `clusterId` attests: the fake boot chain, PCR 15 of that cluster, `changes`. */
export function clusterPcrs(clusterId: Buffer, changes: [number, Buffer][] = []): Map<number, Buffer> {
  const pcrs = bootChain();
  pcrs.set(15, clusterPcrValue(clusterId));
  for (const [i, v] of changes) pcrs.set(i, v);
  return pcrs;
}

/** An admission as the JoinService appends it to its audit log: a join of `nodeName`, admitted as a worker or refused. */
export function auditEntry(
  nodeName: string,
  verdict: AdmissionRecord['verdict'] = 'admitted',
): Omit<AdmissionRecord, 'seq' | 'time' | 'prev'> {
  return {
    peer: '10.0.0.9:4000',
    nodeName,
    akName: '000b'.padEnd(68, '1'),
    ekCertificateHash: 'cd'.repeat(32),
    request: 'join',
    verdict,
    reason: verdict === 'refused' ? 'PCR 4 differs' : 'worker',
    pcrDigest: 'ef'.repeat(32),
  };
}

/** A cluster's one component as its secrets list it: kubeadm, from an address nothing serves. */
export function kubeadmComponent(): ClusterSecrets['components'][number] {
  return {
    url: 'http://x/kubeadm',
    sha256: 'ab'.repeat(32),
    installPath: '/usr/local/bin/kubeadm',
    extract: false,
  };
}

/** A cluster's secrets as a node stores them, fresh random keys per call; a test overrides the field it is about. */
export function fakeClusterSecrets(overrides: Partial<ClusterSecrets> = {}): ClusterSecrets {
  return {
    masterSecret: { key: randomBytes(32), salt: randomBytes(32) },
    measurementSalt: randomBytes(32),
    measurements: '{}',
    kubernetesVersion: 'v1.31.2',
    components: [],
    apiServerEndpoint: '10.0.0.1:6443',
    clusterName: 'c',
    ...overrides,
  };
}

/** The cluster ID those secrets derive (what PCR 15 is extended with). */
export function clusterIdOf(secrets: ClusterSecrets): Buffer {
  return deriveClusterId(deriveMeasurementSecret(secrets.masterSecret), secrets.measurementSalt);
}

/** An init request the init server accepts, as the CLI sends it; a test overrides the field it is about. */
export function validInitRequest(overrides: Partial<InitRequest> = {}): InitRequest {
  return {
    initSecret: randomBytes(32),
    keySource: { $case: 'masterSecret', value: { key: randomBytes(32), salt: randomBytes(32) } },
    measurementSalt: randomBytes(32),
    kubernetesVersion: 'v1.31.2',
    kubernetesComponents: [
      {
        url: 'https://example.test/kubeadm',
        sha256: 'ab'.repeat(32),
        installPath: '/usr/local/bin/kubeadm',
        extract: false,
      },
    ],
    clusterName: 'sextant-test',
    apiserverCertSans: ['sextant.example.test'],
    serviceCidr: '10.96.0.0/12',
    podCidr: '10.244.0.0/16',
    measurements: Buffer.from('{}'),
    ...overrides,
  };
}

/** A promise with its resolve/reject outside: lets a test hold a step open to race another against it. */
export function deferred<T = void>(): { promise: Promise<T>; resolve(v: T): void; reject(e: Error): void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The owner key of the fake cluster, and its public half as a node's metadata carries it. */
export const FAKE_OWNER_SEED = Buffer.alloc(32, 0x0e);
export const FAKE_OWNER = ownerPublicKeyText(FAKE_OWNER_SEED);

/** A JoinService on loopback (plain gRPC) whose answers each test sets; `channel` is the attested channel to it. */
export class FakeJoinService {
  server = new grpc.Server();
  port = 0;
  joinRequests: IssueJoinTicketRequest[] = [];
  rejoinDisks: string[] = [];
  /** Disks of the joins the client confirmed. */
  confirms: string[] = [];
  /** The TLS certificate this JoinService presents (made by `start`): the attested channel pins it. */
  certDer: Buffer = Buffer.alloc(0);
  /** The certificate the owner proof is bound to when not `certDer`: a proof relayed from another channel. */
  proofCertDer: Buffer | null = null;
  /** The owner key this JoinService holds (null: none, so it cannot prove its operator). */
  ownerSeed: Buffer | null = FAKE_OWNER_SEED;
  ticket: () => IssueJoinTicketResponse | grpc.ServiceError = () => {
    throw new Error('no ticket set');
  };
  rejoinTicket: () => IssueRejoinTicketResponse | grpc.ServiceError = () => {
    throw new Error('no rejoin ticket set');
  };

  get endpoint(): { host: string; port: number } {
    return { host: '127.0.0.1', port: this.port };
  }

  /**
   * The channel the join client gets once this JoinService "attested" `pcrs`: a real gRPC channel to it, pinned
   * to nothing (the TLS and the quote are the attested-TLS tests' concern).
   */
  channel(pcrs: Map<number, Buffer>): AttestedChannel {
    const credentials = grpc.credentials.createInsecure();
    const channel = new grpc.Channel(formatEndpoint(this.endpoint), credentials, {});
    return {
      endpoint: this.endpoint,
      channel,
      credentials,
      clientOptions: { channelOverride: channel },
      serverCertificate: this.certDer,
      attestation: {
        pcrs,
        warnings: [],
        akName: Buffer.alloc(34),
        ekCertificateHash: Buffer.alloc(32),
        ekPublicHash: Buffer.alloc(32),
      },
      close: () => channel.close(),
    };
  }

  async start(): Promise<void> {
    this.certDer = (await createEphemeralIdentity()).certDer;
    this.server.addService(JoinServiceService, {
      proveOwner: (
        call: grpc.ServerUnaryCall<OwnerChallenge, OwnerProof>,
        cb: grpc.sendUnaryData<OwnerProof>,
      ) => {
        if (!this.ownerSeed) {
          cb(refused(grpc.status.FAILED_PRECONDITION, 'this JoinService holds no owner key'));
          return;
        }
        const cert = this.proofCertDer ?? this.certDer;
        cb(null, { signature: proveOwner(this.ownerSeed, call.request.nonce, spkiOf(cert)) });
      },
      confirmJoin: (
        call: grpc.ServerUnaryCall<{ diskUuid: string }, object>,
        cb: grpc.sendUnaryData<object>,
      ) => {
        this.confirms.push(call.request.diskUuid);
        cb(null, {});
      },
      challenge: (_call: unknown, cb: grpc.sendUnaryData<Challenge>) => cb(null, Challenge.fromPartial({})),
      issueJoinTicket: (
        call: grpc.ServerUnaryCall<IssueJoinTicketRequest, IssueJoinTicketResponse>,
        cb: grpc.sendUnaryData<IssueJoinTicketResponse>,
      ) => {
        this.joinRequests.push(call.request);
        const t = this.ticket();
        if ('code' in t) cb(t);
        else cb(null, t);
      },
      issueRejoinTicket: (
        call: grpc.ServerUnaryCall<{ diskUuid: string }, IssueRejoinTicketResponse>,
        cb: grpc.sendUnaryData<IssueRejoinTicketResponse>,
      ) => {
        this.rejoinDisks.push(call.request.diskUuid);
        const t = this.rejoinTicket();
        if ('code' in t) cb(t);
        else cb(null, t);
      },
    });
    this.port = await new Promise<number>((res, rej) =>
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? rej(e) : res(p),
      ),
    );
  }
}

export function refused(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

/**
 * A join ticket for the cluster of `measurementSecret`/`measurementSalt`. Built on the message's defaults, so
 * fields added to the contract later need no change here.
 */
export function ticketFor(
  cluster: { measurementSecret: Buffer; measurementSalt: Buffer },
  overrides: Partial<IssueJoinTicketResponse> = {},
): IssueJoinTicketResponse {
  return {
    ...IssueJoinTicketResponse.fromPartial({}),
    stateDiskKey: Buffer.alloc(32, 0x11),
    measurementSalt: cluster.measurementSalt,
    measurementSecret: cluster.measurementSecret,
    apiServerEndpoint: '10.0.0.1:6443',
    token: 'abcdef.0123456789abcdef',
    discoveryTokenCaCertHash: `sha256:${'ab'.repeat(32)}`,
    kubernetesVersion: 'v1.31.2',
    nodeName: 'w-0',
    ...overrides,
  };
}

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** A cluster CA as kubeadm makes one (self-signed, CA:TRUE, P-256), valid for an hour: PEM certificate and key. */
export async function clusterCa(): Promise<{ certPem: string; keyPem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=kubernetes',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8
    .toString('base64')
    .match(/.{1,64}/g)
    ?.join('\n')}\n-----END PRIVATE KEY-----\n`;
  return { certPem: cert.toString('pem'), keyPem };
}
