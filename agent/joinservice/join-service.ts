import * as grpc from '@grpc/grpc-js';
import {
  type Attester,
  attestationService,
  attestedServerCredentials,
  channelUserData,
  type EphemeralIdentity,
  type PendingChallenge,
} from '../../attestation/atls/index.js';
import { clusterPcrValue } from '../../common/cluster-pcr.js';
import { DISK_UUID } from '../../common/contracts/disk-id.js';
import { OWNER_NONCE_BYTES, proveOwner } from '../../common/contracts/owner.js';
import { bindServer, shutdownServer, toServiceError } from '../../common/grpc.js';
import { deriveClusterId, deriveDiskKey, deriveMeasurementSecret } from '../../common/keys.js';
import type { Challenge } from '../../gen/proto/attestation.js';
import { AttestationServiceService } from '../../gen/proto/attestation.js';
import {
  type ChallengeRequest,
  type ConfirmJoinRequest,
  type ConfirmJoinResponse,
  type IssueJoinTicketRequest,
  type IssueJoinTicketResponse,
  type IssueRejoinTicketRequest,
  type IssueRejoinTicketResponse,
  type JoinServiceServer,
  JoinServiceService,
  type OwnerChallenge,
  type OwnerProof,
} from '../../gen/proto/join.js';
import type { CertificateFile } from '../kubeadm/control-plane-certs.js';
import type { BootstrapTokens } from '../kubernetes/bootstrap-token.js';
import type { Logger } from '../log/index.js';
import type { ClusterSecrets } from '../state/cluster-secrets.js';
import { type AdmissionDeps, admit } from './admission.js';
import type { AdmissionRegistry } from './admissions.js';
import type { AuditLog } from './audit-log.js';
import { type Inventory, type NodeIdentity, Refusal, type UnlistedPolicy } from './authorization.js';
import { withInventorySerial } from './inventory.js';
import { CallLimits, type PeerRateLimiter, peerHost, type Semaphore } from './limits.js';
import type { MeasurementsSource } from './measurements-source.js';

export interface JoinServiceDeps {
  log: Logger;
  identity: EphemeralIdentity;
  attester: Attester;
  measurements: MeasurementsSource;
  secrets: ClusterSecrets;
  /** One short-lived bootstrap token per ticket, deleted once its node confirmed the join. */
  tokens: BootstrapTokens;
  /** The certificates all control planes share (kubeadm's upload-certs set), for control-plane tickets. */
  controlPlaneCertificates(): Promise<CertificateFile[]>;
  caCertHash: string;
  admissions: AdmissionRegistry;
  audit: AuditLog;
  /** The operator's inventory (verified with the owner key): names and roles by EK, as of this join. */
  inventory(): Promise<Inventory>;
  /** What a node the inventory does not list gets (default: worker, named after its EK). */
  unlisted?: UnlistedPolicy;
  /** Serialized cluster secrets handed to control-plane joiners. */
  clusterSecretsFile(): Buffer;
  limits?: Partial<JoinServiceLimits>;
  /**
   * The process's call limits (per-peer bucket, concurrency bound, TPM budget), shared with the node's own port;
   * default: limits of this service's own, from `limits`.
   */
  callLimits?: CallLimits;
}

export interface JoinServiceLimits {
  maxConcurrentVerifications: number;
  maxQueuedVerifications: number;
  burstPerPeer: number;
  perPeerPerSecond: number;
  challengeTtlMs: number;
  maxMessageBytes: number;
}

const DEFAULT_LIMITS: JoinServiceLimits = {
  maxConcurrentVerifications: 64,
  maxQueuedVerifications: 1024,
  burstPerPeer: 10,
  perPeerPerSecond: 2,
  challengeTtlMs: 60_000,
  maxMessageBytes: 1024 * 1024,
};

interface Outstanding {
  pending: PendingChallenge;
  expires: number;
}

/**
 * The JoinService: admits nodes whose attestation, made on this very TLS connection, matches the current
 * measurements, and hands them what the operator's records say they may have. Name, role and disk are bound to the
 * node's EK; nothing the request says about itself is believed. Challenges are single use and tied to the
 * connection (peer address and port) they were issued on.
 */
export class JoinService {
  readonly #limits: JoinServiceLimits;
  readonly #challenges = new Map<string, Outstanding>();
  readonly #callLimits: CallLimits;
  readonly #semaphore: Semaphore;
  readonly #rate: PeerRateLimiter;
  readonly #userData: Buffer;
  readonly #clusterPcr: Buffer;
  /** The bootstrap token id of each admitted node's latest ticket (by EK), until the node confirms its join. */
  readonly #tokens = new Map<string, string>();
  #server: grpc.Server | null = null;

  constructor(private readonly deps: JoinServiceDeps) {
    this.#limits = { ...DEFAULT_LIMITS, ...deps.limits };
    // One bucket per peer and one concurrency bound for every call of this process: tickets here, Identify/Attest
    // on this port and on the node's own.
    this.#callLimits =
      deps.callLimits ??
      new CallLimits({
        burstPerPeer: this.#limits.burstPerPeer,
        perPeerPerSecond: this.#limits.perPeerPerSecond,
        maxConcurrent: this.#limits.maxConcurrentVerifications,
        maxQueued: this.#limits.maxQueuedVerifications,
      });
    this.#semaphore = this.#callLimits.semaphore;
    this.#rate = this.#callLimits.rate;
    // Clients bind their documents to our TLS key: a document made for another server is useless here.
    this.#userData = channelUserData('client', deps.identity.spkiDer);
    const { secrets } = deps;
    this.#clusterPcr = clusterPcrValue(
      deriveClusterId(deriveMeasurementSecret(secrets.masterSecret), secrets.measurementSalt),
    );
  }

  async listen(address: string, port: number): Promise<number> {
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.#limits.maxMessageBytes,
      'grpc.max_send_message_length': 4 * 1024 * 1024,
    });
    server.addService(
      AttestationServiceService,
      attestationService(this.deps.attester, this.deps.identity, this.#callLimits),
    );
    const handlers: JoinServiceServer = {
      proveOwner: (call, cb) =>
        this.#unary('owner', call, cb, async () => {
          const proof = await this.proveOwner(call.request);
          // a joining node's next calls (Attest) draw on the TPM share a flood of strangers cannot empty
          this.#callLimits.vouch(call.getPeer());
          return proof;
        }),
      challenge: (call, cb) =>
        this.#unary('challenge', call, cb, () => this.challenge(call.request, call.getPeer())),
      issueJoinTicket: (call, cb) =>
        this.#unary('join', call, cb, () => this.issueJoinTicket(call.request, call.getPeer())),
      confirmJoin: (call, cb) =>
        this.#unary('confirm', call, cb, () => this.confirmJoin(call.request, call.getPeer())),
      issueRejoinTicket: (call, cb) =>
        this.#unary('rejoin', call, cb, () => this.issueRejoinTicket(call.request, call.getPeer())),
    };
    server.addService(JoinServiceService, handlers);
    const bound = await bindServer(server, address, port, attestedServerCredentials(this.deps.identity));
    this.#server = server;
    this.deps.measurements.watch();
    return bound;
  }

  async close(): Promise<void> {
    this.deps.measurements.close();
    const server = this.#server;
    this.#server = null;
    if (server) await shutdownServer(server);
    await this.deps.audit.close().catch(() => {});
  }

  #unary<Res>(
    what: string,
    call: grpc.ServerUnaryCall<unknown, Res>,
    cb: grpc.sendUnaryData<Res>,
    fn: () => Promise<Res>,
  ): void {
    const peer = call.getPeer();
    if (!this.#rate.allow(peerHost(peer))) {
      this.deps.log.warn(`${what} refused: rate limit`, { peer });
      cb(toServiceError(new Refusal(grpc.status.RESOURCE_EXHAUSTED, 'too many requests from this address')));
      return;
    }
    fn().then(
      (res) => cb(null, res),
      (err: unknown) => cb(toServiceError(err)),
    );
  }

  /**
   * Shows a joining node that this JoinService belongs to its operator: a signature with the owner key over the
   * node's nonce and this server's TLS key (common/contracts/owner.ts). A JoinService without the key cannot.
   */
  async proveOwner(req: OwnerChallenge): Promise<OwnerProof> {
    if (req.nonce.length !== OWNER_NONCE_BYTES) {
      throw new Refusal(grpc.status.INVALID_ARGUMENT, `nonce: expected ${OWNER_NONCE_BYTES} bytes`);
    }
    const seed = this.deps.secrets.ownerSeed;
    if (!seed) {
      throw new Refusal(
        grpc.status.FAILED_PRECONDITION,
        'this JoinService holds no owner key (cluster secrets without ownerSeed); it cannot prove its operator',
      );
    }
    return { signature: proveOwner(seed, req.nonce, this.deps.identity.spkiDer) };
  }

  async challenge(req: ChallengeRequest, peer: string): Promise<Challenge> {
    if (!req.identity) throw new Refusal(grpc.status.INVALID_ARGUMENT, 'identity: required');
    this.#expire();
    const release = await this.#semaphore.acquire().catch((err: Error) => {
      throw new Refusal(grpc.status.RESOURCE_EXHAUSTED, err.message);
    });
    try {
      const pending = await this.deps.measurements
        .current()
        .challenge(req.identity)
        .catch((err: Error) => {
          this.deps.log.warn(`challenge refused: ${err.message}`, { peer });
          throw new Refusal(grpc.status.PERMISSION_DENIED, err.message);
        });
      this.#challenges.set(peer, { pending, expires: Date.now() + this.#limits.challengeTtlMs });
      return pending.challenge;
    } finally {
      release();
    }
  }

  /** The admission path's neighbours: this connection's challenges, the verification bound, the records. */
  get #admission(): AdmissionDeps {
    return {
      log: this.deps.log,
      audit: this.deps.audit,
      admissions: this.deps.admissions,
      inventory: () => this.deps.inventory(),
      unlisted: this.deps.unlisted ?? 'worker',
      clusterPcr: this.#clusterPcr,
      takeChallenge: (peer) => {
        const outstanding = this.#challenges.get(peer);
        this.#challenges.delete(peer);
        return outstanding && outstanding.expires >= Date.now() ? outstanding.pending : undefined;
      },
      verify: async (pending, doc) => {
        const release = await this.#semaphore.acquire().catch((err: Error) => {
          throw new Refusal(grpc.status.RESOURCE_EXHAUSTED, err.message);
        });
        try {
          return await pending.verify(doc, this.#userData);
        } finally {
          release();
        }
      },
    };
  }

  async issueJoinTicket(req: IssueJoinTicketRequest, peer: string): Promise<IssueJoinTicketResponse> {
    const { secrets } = this.deps;
    if (!DISK_UUID.test(req.diskUuid)) {
      throw new Refusal(grpc.status.INVALID_ARGUMENT, 'disk_uuid: expected a lowercase UUID');
    }
    // What the node claimed about itself is recorded beside what it got, never used.
    const claimedFor = (who: NodeIdentity) =>
      req.nodeName !== who.nodeName || req.isControlPlane !== (who.role === 'control-plane')
        ? `; it asked for ${JSON.stringify(req.nodeName.slice(0, 64))} as ${req.isControlPlane ? 'control plane' : 'worker'} (ignored)`
        : '';
    const { verified, who, prepared } = await admit(
      this.#admission,
      { kind: 'join', peer, attestation: req.attestation, diskUuid: req.diskUuid },
      {
        reason: (w) => `${w.role} by ${w.listed ? 'inventory' : 'unlisted-node policy'}${claimedFor(w)}`,
        // made before the decision is audited: a ticket that could not be made is no admission
        prepare: async (w) => ({
          token: await this.#issueToken(w.ek, w.nodeName),
          certificates: w.role === 'control-plane' ? await this.deps.controlPlaneCertificates() : [],
        }),
      },
    );
    const { nodeName, role, ek } = who;
    const controlPlane = role === 'control-plane';
    const { token, certificates } = prepared;
    const claimed = claimedFor(who);
    const previous = this.deps.admissions.get(ek);
    await this.deps.admissions.record({
      ek,
      nodeName,
      diskUuid: req.diskUuid,
      role,
      state: previous?.state === 'confirmed' ? 'confirmed' : 'pending',
      akName: verified.akName.toString('hex'),
      ekCertificateHash: verified.ekCertificateHash.toString('hex'),
      admittedAt: new Date().toISOString(),
      ...(previous?.confirmedAt ? { confirmedAt: previous.confirmedAt } : {}),
    });
    this.#callLimits.vouch(peer);
    this.deps.log.info(`admitted ${nodeName} as ${controlPlane ? 'control plane' : 'worker'}${claimed}`, {
      peer,
      node: nodeName,
    });
    return {
      stateDiskKey: deriveDiskKey(secrets.masterSecret, req.diskUuid),
      measurementSalt: secrets.measurementSalt,
      measurementSecret: deriveMeasurementSecret(secrets.masterSecret),
      apiServerEndpoint: secrets.apiServerEndpoint,
      token,
      discoveryTokenCaCertHash: this.deps.caCertHash,
      controlPlaneFiles: certificates,
      clusterSecrets: controlPlane
        ? withInventorySerial(this.deps.clusterSecretsFile(), (await this.deps.inventory()).serial)
        : Buffer.alloc(0),
      kubernetesVersion: secrets.kubernetesVersion,
      kubernetesComponents: secrets.components,
      nodeName,
      isControlPlane: controlPlane,
    };
  }

  /** The node joined and holds its lock for this cluster: its pending admission becomes confirmed. */
  async confirmJoin(req: ConfirmJoinRequest, peer: string): Promise<ConfirmJoinResponse> {
    const { who } = await admit(
      this.#admission,
      { kind: 'confirm', peer, attestation: req.attestation, diskUuid: req.diskUuid },
      { reason: () => 'join confirmed', prepare: async () => undefined },
    );
    await this.deps.admissions.confirm(who.ek);
    // Its kubelet has its own credentials now: the join token has done its work.
    await this.#revokeToken(who.ek);
    this.deps.log.info(`join of ${who.nodeName} confirmed`, { peer, node: who.nodeName });
    return {};
  }

  async issueRejoinTicket(req: IssueRejoinTicketRequest, peer: string): Promise<IssueRejoinTicketResponse> {
    const { who } = await admit(
      this.#admission,
      { kind: 'rejoin', peer, attestation: req.attestation, diskUuid: req.diskUuid },
      { reason: () => 'rejoin', prepare: async () => undefined },
    );
    // A node that rejoins with PCR 15 = this cluster's joined for sure, whether or not its confirmation arrived.
    await this.deps.admissions.confirm(who.ek);
    this.#callLimits.vouch(peer);
    this.deps.log.info(`rejoin admitted for ${who.nodeName}`, { peer, node: who.nodeName });
    return {
      stateDiskKey: deriveDiskKey(this.deps.secrets.masterSecret, req.diskUuid),
      measurementSecret: deriveMeasurementSecret(this.deps.secrets.masterSecret),
    };
  }

  /**
   * A fresh bootstrap token for this admission. The EK's previous ticket is dead (the node asks again only when it
   * lost or refused it), so its token goes first.
   */
  async #issueToken(ek: string, nodeName: string): Promise<string> {
    await this.#revokeToken(ek);
    const issued = await this.deps.tokens
      .create(`sextant join ticket for ${nodeName}`, nodeName)
      .catch((err: Error) => {
        throw new Refusal(grpc.status.UNAVAILABLE, `no bootstrap token: ${err.message}`);
      });
    this.#tokens.set(ek, issued.id);
    return issued.token;
  }

  /** Deletes the EK's outstanding token; a failure is logged (the token still expires and the cleaner removes it). */
  async #revokeToken(ek: string): Promise<void> {
    const id = this.#tokens.get(ek);
    if (id === undefined) return;
    this.#tokens.delete(ek);
    await this.deps.tokens
      .delete(id)
      .catch((err: Error) =>
        this.deps.log.warn(`bootstrap token ${id} not deleted (it expires on its own): ${err.message}`),
      );
  }

  #expire(): void {
    const now = Date.now();
    if (this.#challenges.size < 1000) return;
    for (const [peer, o] of this.#challenges) if (o.expires < now) this.#challenges.delete(peer);
  }
}
