import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  type Attester,
  attestationService,
  attestedServerCredentials,
  channelUserData,
  type EphemeralIdentity,
  type PendingChallenge,
  type VerifiedAttestation,
} from '../../attestation/atls/index.js';
import { clusterPcrValue } from '../../common/cluster-pcr.js';
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
import type { AdmissionRegistry } from './admissions.js';
import type { AuditLog } from './audit-log.js';
import {
  authorizeJoin,
  authorizeReturn,
  type Inventory,
  identify,
  type NodeIdentity,
  Refusal,
  type UnlistedPolicy,
} from './authorization.js';
import { CallLimits, type PeerRateLimiter, peerHost, type Semaphore } from './limits.js';
import type { MeasurementsSource } from './measurements-source.js';

export { Refusal } from './authorization.js';

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

const DISK_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Outstanding {
  pending: PendingChallenge;
  expires: number;
}

type Request = 'join' | 'rejoin' | 'confirm';

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

  /** Takes (and so spends) the challenge issued on this connection, then verifies the document against it. */
  async #verify(
    what: Request,
    doc: IssueJoinTicketRequest['attestation'],
    peer: string,
  ): Promise<VerifiedAttestation> {
    const outstanding = this.#challenges.get(peer);
    this.#challenges.delete(peer);
    // Anyone who reaches the port can cause these two: counted, not written one record each.
    const early = (reason: string, code: grpc.status): never => {
      this.deps.audit.countRefusal(reason);
      this.deps.log.warn(`${what} refused for ${peer}: ${reason}`, { peer });
      throw new Refusal(code, reason);
    };
    if (!doc) return early('attestation: required', grpc.status.INVALID_ARGUMENT);
    if (!outstanding || outstanding.expires < Date.now()) {
      return early(
        'no outstanding challenge on this connection (call Challenge first)',
        grpc.status.FAILED_PRECONDITION,
      );
    }
    const release = await this.#semaphore.acquire().catch((err: Error) => {
      throw new Refusal(grpc.status.RESOURCE_EXHAUSTED, err.message);
    });
    try {
      return await outstanding.pending.verify(doc, this.#userData);
    } catch (err) {
      return this.#refuse(
        what,
        peer,
        '',
        null,
        new Refusal(grpc.status.PERMISSION_DENIED, (err as Error).message),
      );
    } finally {
      release();
    }
  }

  /** Audits and logs a refusal, then throws it. */
  async #refuse(
    what: Request,
    peer: string,
    nodeName: string,
    verified: VerifiedAttestation | null,
    refusal: Refusal,
  ): Promise<never> {
    await this.#audit(what, peer, nodeName, verified, 'refused', refusal.message).catch((err: Error) =>
      this.deps.log.error(`audit log: ${err.message}`),
    );
    this.deps.log.warn(`${what} refused for ${nodeName || peer}: ${refusal.message}`, {
      peer,
      ...(nodeName ? { node: nodeName } : {}),
    });
    throw refusal;
  }

  async issueJoinTicket(req: IssueJoinTicketRequest, peer: string): Promise<IssueJoinTicketResponse> {
    const { secrets } = this.deps;
    if (!DISK_UUID.test(req.diskUuid)) {
      throw new Refusal(grpc.status.INVALID_ARGUMENT, 'disk_uuid: expected a lowercase UUID');
    }
    const verified = await this.#verify('join', req.attestation, peer);
    let who: NodeIdentity | undefined;
    try {
      who = identify(
        verified.ekPublicHash.toString('hex'),
        await this.deps.inventory(),
        this.deps.unlisted ?? 'worker',
      );
      authorizeJoin(
        { ek: who.ek, pcr15: pcr15Of(verified), diskUuid: req.diskUuid },
        who,
        this.deps.admissions,
      );
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      return this.#refuse('join', peer, who?.nodeName ?? '', verified, err);
    }
    const { nodeName, role, ek } = who;
    const controlPlane = role === 'control-plane';
    const token = await this.#issueToken(ek, nodeName);
    const certificates = controlPlane ? await this.deps.controlPlaneCertificates() : [];
    // What the node claimed about itself is recorded beside what it got, never used.
    const claimed =
      req.nodeName !== nodeName || req.isControlPlane !== controlPlane
        ? `; it asked for ${JSON.stringify(req.nodeName.slice(0, 64))} as ${req.isControlPlane ? 'control plane' : 'worker'} (ignored)`
        : '';
    // The decision counts only once it is audited and recorded, in that order.
    try {
      await this.#audit(
        'join',
        peer,
        nodeName,
        verified,
        'admitted',
        `${role} by ${who.listed ? 'inventory' : 'unlisted-node policy'}${claimed}`,
      );
    } catch (err) {
      throw new Refusal(grpc.status.UNAVAILABLE, `audit log unavailable: ${(err as Error).message}`);
    }
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
      clusterSecrets: controlPlane ? this.deps.clusterSecretsFile() : Buffer.alloc(0),
      kubernetesVersion: secrets.kubernetesVersion,
      kubernetesComponents: secrets.components,
      nodeName,
      isControlPlane: controlPlane,
    };
  }

  /** The node joined and holds its lock for this cluster: its pending admission becomes confirmed. */
  async confirmJoin(req: ConfirmJoinRequest, peer: string): Promise<ConfirmJoinResponse> {
    const verified = await this.#verify('confirm', req.attestation, peer);
    const ek = await this.#admissionKey(verified);
    let nodeName = '';
    try {
      nodeName = authorizeReturn(
        'confirm',
        { ek, pcr15: pcr15Of(verified), diskUuid: req.diskUuid },
        this.#clusterPcr,
        this.deps.admissions,
      ).nodeName;
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      return this.#refuse('confirm', peer, this.deps.admissions.get(ek)?.nodeName ?? '', verified, err);
    }
    await this.deps.admissions.confirm(ek);
    // Its kubelet has its own credentials now: the join token has done its work.
    await this.#revokeToken(ek);
    await this.#audit('confirm', peer, nodeName, verified, 'admitted', 'join confirmed').catch((err: Error) =>
      this.deps.log.error(`audit log: ${err.message}`),
    );
    this.deps.log.info(`join of ${nodeName} confirmed`, { peer, node: nodeName });
    return {};
  }

  async issueRejoinTicket(req: IssueRejoinTicketRequest, peer: string): Promise<IssueRejoinTicketResponse> {
    const verified = await this.#verify('rejoin', req.attestation, peer);
    const ek = await this.#admissionKey(verified);
    let nodeName = '';
    try {
      nodeName = authorizeReturn(
        'rejoin',
        { ek, pcr15: pcr15Of(verified), diskUuid: req.diskUuid },
        this.#clusterPcr,
        this.deps.admissions,
      ).nodeName;
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      return this.#refuse('rejoin', peer, this.deps.admissions.get(ek)?.nodeName ?? '', verified, err);
    }
    try {
      await this.#audit('rejoin', peer, nodeName, verified, 'admitted', 'rejoin');
    } catch (err) {
      throw new Refusal(grpc.status.UNAVAILABLE, `audit log unavailable: ${(err as Error).message}`);
    }
    // A node that rejoins with PCR 15 = this cluster's joined for sure, whether or not its confirmation arrived.
    await this.deps.admissions.confirm(ek);
    this.#callLimits.vouch(peer);
    this.deps.log.info(`rejoin admitted for ${nodeName}`, { peer, node: nodeName });
    return {
      stateDiskKey: deriveDiskKey(this.deps.secrets.masterSecret, req.diskUuid),
      measurementSecret: deriveMeasurementSecret(this.deps.secrets.masterSecret),
    };
  }

  /** The EK an admission of this TPM is recorded under: the inventory's first of its EKs, else the presented one. */
  async #admissionKey(verified: VerifiedAttestation): Promise<string> {
    const presented = verified.ekPublicHash.toString('hex');
    return (await this.deps.inventory()).byEk(presented)?.eks[0] ?? presented;
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

  #audit(
    request: Request,
    peer: string,
    nodeName: string,
    verified: VerifiedAttestation | null,
    verdict: 'admitted' | 'refused',
    reason: string,
  ): Promise<void> {
    const pcrDigest = verified
      ? createHash('sha256')
          .update(Buffer.concat([...verified.pcrs.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v)))
          .digest('hex')
      : '';
    // The audit record's request kinds are join and rejoin; a confirmation is the join's epilogue.
    return this.deps.audit.append({
      peer,
      nodeName,
      akName: verified?.akName.toString('hex') ?? '',
      ekCertificateHash: verified?.ekCertificateHash.toString('hex') ?? '',
      request: request === 'rejoin' ? 'rejoin' : 'join',
      verdict,
      reason: `${verified ? `EK ${verified.ekPublicHash.toString('hex')}: ` : ''}${reason}`,
      pcrDigest,
    });
  }

  #expire(): void {
    const now = Date.now();
    if (this.#challenges.size < 1000) return;
    for (const [peer, o] of this.#challenges) if (o.expires < now) this.#challenges.delete(peer);
  }
}

function pcr15Of(verified: VerifiedAttestation): Buffer {
  return verified.pcrs.get(15) ?? Buffer.alloc(0);
}
