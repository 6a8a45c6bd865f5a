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
import { bindServer, shutdownServer } from '../../common/grpc.js';
import { deriveDiskKey, deriveMeasurementSecret } from '../../common/keys.js';
import { isDnsSubdomain } from '../../common/net.js';
import type { Challenge } from '../../gen/proto/attestation.js';
import { AttestationServiceService } from '../../gen/proto/attestation.js';
import {
  type ChallengeRequest,
  type IssueJoinTicketRequest,
  type IssueJoinTicketResponse,
  type IssueRejoinTicketRequest,
  type IssueRejoinTicketResponse,
  type JoinServiceServer,
  JoinServiceService,
} from '../../gen/proto/join.js';
import type { Logger } from '../log/index.js';
import { CLUSTER_SECRETS_TICKET_PATH, type ClusterSecrets } from '../state/cluster-secrets.js';
import type { AdmissionRegistry } from './admissions.js';
import type { AuditLog } from './audit-log.js';
import type { KubeletCertificateSigner } from './kubelet-certificate.js';
import { PeerRateLimiter, peerHost, Semaphore } from './limits.js';
import type { MeasurementsSource } from './measurements-source.js';

export interface JoinServiceDeps {
  log: Logger;
  identity: EphemeralIdentity;
  attester: Attester;
  measurements: MeasurementsSource;
  secrets: ClusterSecrets;
  kubeadm: { createToken(ttl: string): Promise<string>; uploadCerts(): Promise<string> };
  signer: KubeletCertificateSigner;
  caCertHash: string;
  admissions: AdmissionRegistry;
  audit: AuditLog;
  /** Serialized cluster secrets handed to control-plane joiners. */
  clusterSecretsFile(): Buffer;
  limits?: Partial<JoinServiceLimits>;
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

class Refusal extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

interface Outstanding {
  pending: PendingChallenge;
  expires: number;
}

/**
 * The JoinService: admits nodes whose attestation, made on this very TLS connection, matches the current
 * measurements, and hands them what they need to join. Challenges are single use and tied to the connection
 * (peer address and port) they were issued on.
 */
export class JoinService {
  readonly #limits: JoinServiceLimits;
  readonly #challenges = new Map<string, Outstanding>();
  readonly #semaphore: Semaphore;
  readonly #rate: PeerRateLimiter;
  readonly #userData: Buffer;
  #server: grpc.Server | null = null;

  constructor(private readonly deps: JoinServiceDeps) {
    this.#limits = { ...DEFAULT_LIMITS, ...deps.limits };
    this.#semaphore = new Semaphore(
      this.#limits.maxConcurrentVerifications,
      this.#limits.maxQueuedVerifications,
    );
    this.#rate = new PeerRateLimiter(this.#limits.burstPerPeer, this.#limits.perPeerPerSecond);
    // Clients bind their documents to our TLS key: a document made for another server is useless here.
    this.#userData = channelUserData('client', deps.identity.spkiDer);
  }

  async listen(address: string, port: number): Promise<number> {
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.#limits.maxMessageBytes,
      'grpc.max_send_message_length': 4 * 1024 * 1024,
    });
    server.addService(AttestationServiceService, attestationService(this.deps.attester, this.deps.identity));
    const handlers: JoinServiceServer = {
      challenge: (call, cb) =>
        this.#unary('challenge', call, cb, () => this.challenge(call.request, call.getPeer())),
      issueJoinTicket: (call, cb) =>
        this.#unary('join', call, cb, () => this.issueJoinTicket(call.request, call.getPeer())),
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
    if (!server) return;
    await shutdownServer(server);
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
      cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'too many requests from this address' });
      return;
    }
    fn().then(
      (res) => cb(null, res),
      (err: unknown) => {
        const code = err instanceof Refusal ? err.code : grpc.status.INTERNAL;
        cb({ code, details: err instanceof Error ? err.message : String(err) });
      },
    );
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
    what: 'join' | 'rejoin',
    doc: IssueJoinTicketRequest['attestation'],
    peer: string,
    nodeName: string,
  ): Promise<VerifiedAttestation> {
    const outstanding = this.#challenges.get(peer);
    this.#challenges.delete(peer);
    const refuse = async (reason: string, code = grpc.status.PERMISSION_DENIED): Promise<never> => {
      await this.#audit(what, peer, nodeName, null, 'refused', reason);
      this.deps.log.warn(`${what} refused for ${nodeName || peer}: ${reason}`, { peer, node: nodeName });
      throw new Refusal(code, reason);
    };
    if (!doc) return refuse('attestation: required', grpc.status.INVALID_ARGUMENT);
    if (!outstanding || outstanding.expires < Date.now()) {
      return refuse(
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
      return refuse((err as Error).message);
    } finally {
      release();
    }
  }

  async issueJoinTicket(req: IssueJoinTicketRequest, peer: string): Promise<IssueJoinTicketResponse> {
    const { secrets } = this.deps;
    const nodeName = req.nodeName;
    if (!isDnsSubdomain(nodeName)) {
      throw new Refusal(
        grpc.status.INVALID_ARGUMENT,
        `node_name: expected a DNS subdomain, got ${JSON.stringify(nodeName.slice(0, 64))}`,
      );
    }
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(req.diskUuid)) {
      throw new Refusal(grpc.status.INVALID_ARGUMENT, 'disk_uuid: expected a lowercase UUID');
    }
    const verified = await this.#verify('join', req.attestation, peer, nodeName);
    const akName = verified.akName.toString('hex');
    const known = this.deps.admissions.get(akName);
    if (known && known.diskUuid !== req.diskUuid) {
      const reason = 'this node was admitted before with another state disk; rejoin instead';
      await this.#audit('join', peer, nodeName, verified, 'refused', reason);
      throw new Refusal(grpc.status.FAILED_PRECONDITION, reason);
    }
    let kubeletCert: Buffer;
    try {
      kubeletCert = await this.deps.signer.sign(req.certificateRequest, nodeName, peerHost(peer));
    } catch (err) {
      await this.#audit('join', peer, nodeName, verified, 'refused', (err as Error).message);
      throw new Refusal(grpc.status.INVALID_ARGUMENT, (err as Error).message);
    }
    const token = await this.deps.kubeadm.createToken('1h');
    const certificateKey = req.isControlPlane ? await this.deps.kubeadm.uploadCerts() : '';
    await this.deps.admissions.record(akName, {
      nodeName,
      diskUuid: req.diskUuid,
      ekCertificateHash: verified.ekCertificateHash.toString('hex'),
      controlPlane: req.isControlPlane,
      admittedAt: new Date().toISOString(),
    });
    await this.#audit(
      'join',
      peer,
      nodeName,
      verified,
      'admitted',
      req.isControlPlane ? 'control-plane' : 'worker',
    );
    this.deps.log.info(`admitted ${nodeName} as ${req.isControlPlane ? 'control plane' : 'worker'}`, {
      peer,
      node: nodeName,
    });
    return {
      stateDiskKey: deriveDiskKey(secrets.masterSecret, req.diskUuid),
      measurementSalt: secrets.measurementSalt,
      measurementSecret: deriveMeasurementSecret(secrets.masterSecret),
      kubeletCert,
      apiServerEndpoint: secrets.apiServerEndpoint,
      token,
      discoveryTokenCaCertHash: this.deps.caCertHash,
      controlPlaneFiles: req.isControlPlane
        ? [{ path: CLUSTER_SECRETS_TICKET_PATH, data: this.deps.clusterSecretsFile() }]
        : [],
      kubernetesVersion: secrets.kubernetesVersion,
      kubernetesComponents: secrets.components,
      certificateKey,
      caCert: this.deps.signer.caCertDer,
    };
  }

  async issueRejoinTicket(req: IssueRejoinTicketRequest, peer: string): Promise<IssueRejoinTicketResponse> {
    const verified = await this.#verify('rejoin', req.attestation, peer, '');
    const akName = verified.akName.toString('hex');
    const admission = this.deps.admissions.get(akName);
    const refuse = async (reason: string): Promise<never> => {
      await this.#audit('rejoin', peer, admission?.nodeName ?? '', verified, 'refused', reason);
      this.deps.log.warn(`rejoin refused: ${reason}`, { peer });
      throw new Refusal(grpc.status.PERMISSION_DENIED, reason);
    };
    if (!admission) return refuse('no admission record for this node (its AK was never admitted here)');
    if (admission.ekCertificateHash !== verified.ekCertificateHash.toString('hex')) {
      return refuse('the node attests with another EK than it joined with');
    }
    if (admission.diskUuid !== req.diskUuid) return refuse('disk_uuid is not the disk this node joined with');
    await this.#audit('rejoin', peer, admission.nodeName, verified, 'admitted', 'rejoin');
    this.deps.log.info(`rejoin admitted for ${admission.nodeName}`, { peer, node: admission.nodeName });
    return {
      stateDiskKey: deriveDiskKey(this.deps.secrets.masterSecret, req.diskUuid),
      measurementSecret: deriveMeasurementSecret(this.deps.secrets.masterSecret),
    };
  }

  #audit(
    request: 'join' | 'rejoin',
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
    return this.deps.audit
      .append({
        peer,
        nodeName,
        akName: verified?.akName.toString('hex') ?? '',
        ekCertificateHash: verified?.ekCertificateHash.toString('hex') ?? '',
        request,
        verdict,
        reason,
        pcrDigest,
      })
      .catch((err: Error) => this.deps.log.error(`audit log append failed: ${err.message}`));
  }

  #expire(): void {
    const now = Date.now();
    if (this.#challenges.size < 1000) return;
    for (const [peer, o] of this.#challenges) if (o.expires < now) this.#challenges.delete(peer);
  }
}
