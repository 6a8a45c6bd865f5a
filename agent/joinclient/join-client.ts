import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type AttestedChannel,
  type Attester,
  channelUserData,
  type Endpoint,
  grpcMessage,
  type PeerVerifier,
  spkiOf,
} from '../../attestation/atls/index.js';
import { OWNER_NONCE_BYTES, parseOwnerPublicKey, verifyOwnerProof } from '../../common/contracts/owner.js';
import { type UnaryMethod, unaryCall } from '../../common/grpc.js';
import { deriveClusterId } from '../../common/keys.js';
import { formatEndpoint } from '../../common/net.js';
import type { AttestationDocument } from '../../gen/proto/attestation.js';
import {
  type IssueJoinTicketResponse,
  type IssueRejoinTicketResponse,
  JoinServiceClient,
} from '../../gen/proto/join.js';
import type { Component } from '../components/spec.js';
import { WrongDiskKeyError } from '../disk/errors.js';
import { writeControlPlaneCertificates } from '../kubeadm/control-plane-certs.js';
import type { KubeadmJoinRequest } from '../kubeadm/steps.js';
import { JoinStopped } from '../lifecycle/decide.js';
import { type BootstrapDisk, BootstrapFailed, runBootstrap } from '../lifecycle/transaction.js';
import type { Logger } from '../log/index.js';
import type { InstanceMetadata } from '../metadata/instance-metadata.js';
import {
  CLUSTER_ID_PCR,
  ClusterPcrMismatchError,
  clusterPcrValue,
  type NodeLock,
  NodeLockedError,
} from '../nodelock/node-lock.js';
import { backoffDelays } from '../retry/backoff.js';
import type { NodeState, NodeStateStore } from '../state/node-state.js';

/** What `kubeadm join` needs, from the ticket and the node: the kubeadm step's own input. */
export type JoinKubeadmInput = KubeadmJoinRequest;

/**
 * PCRs a joining node expects a JoinService to share with it: the boot chain below PCR 15 as the image fixes it.
 * Left out: PCR 1 (host platform configuration: SMBIOS tables and boot variables carry each VM's identity) and
 * PCR 10 (IMA, a runtime log), which differ between two VMs of one image; the image's measurements leave them out or
 * mark them warnOnly for the same reason. Firmware code (0), option ROMs (2), the boot loader and UKI (4), Secure
 * Boot state (7) and the UKI's sections (11) must all match.
 */
export const BOOT_PCRS: readonly number[] = [0, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14];

export interface JoinClientDeps {
  log: Logger;
  /** This node's identity (name, role, address) as the provider described it at boot. */
  metadata: InstanceMetadata;
  lock: NodeLock;
  state: Pick<NodeStateStore, 'save'>;
  rootfs: string;
  apiServerPort: number;
  attester: Attester;
  /**
   * How this node checks a JoinService's identity on the channel: EK chain, AK binding, quote bound to this TLS
   * connection. Its boot PCRs are compared with `ownBootPcrs` only once a ticket arrived, so that a node whose own
   * boot differs still presents its attestation and the JoinService records why it was refused.
   */
  serverVerifier(): Promise<PeerVerifier>;
  /** This node's own PCRs: a JoinService must show the same BOOT_PCRS before a ticket is used. */
  readPcrs(indices: number[]): Promise<Map<number, Buffer>>;
  openChannel(endpoint: Endpoint, verifier: PeerVerifier): Promise<AttestedChannel>;
  discover(signal?: AbortSignal): Promise<Endpoint[]>;
  installComponents(components: Component[]): Promise<void>;
  runKubeadmJoin(input: JoinKubeadmInput): Promise<void>;
  resetKubernetes(): Promise<void>;
  startKubelet(): Promise<void>;
  /** For control-plane joins: persist the cluster secrets file from the ticket and start a JoinService. */
  onControlPlaneJoined(clusterSecretsFile: Buffer): Promise<void>;
  /**
   * The node's state-disk ID, persisted before it is first shown to a JoinService and kept across resets
   * (agent/joinclient/disk-id.ts): an admission is bound to it. Without it, one ID per agent process.
   */
  diskId?(): Promise<string>;
  /** The node's state disk (diskId is then its LUKS UUID): committed to the ticket's disk key. */
  disk?: BootstrapDisk;
  /** A rejoin opens the state disk with the rejoin ticket's key before kubelet starts; a wrong key ends the rejoin. */
  unlockDisk?(diskKey: Buffer): Promise<void>;
  backoff?: { initialMs: number; maxMs: number };
  timeoutMs?: number;
}

/** A node's join retry pacing: fast enough to follow a JoinService that comes up, slow enough not to hammer one. */
export const JOIN_BACKOFF = { initialMs: 500, maxMs: 10_000 };

/** A unary call whose failure reads as one line ("CODE: details"). */
function call<Req, Res>(fn: UnaryMethod<Req, Res>, req: Req, timeoutMs: number): Promise<Res> {
  return unaryCall(fn, req, timeoutMs).catch((err: unknown) => {
    throw new Error(grpcMessage(err));
  });
}

/**
 * The join client: runs beside the init server from boot, finds a JoinService, proves this node to it on an
 * attested channel, checks the JoinService belongs to the cluster its ticket names, and joins.
 */
export class JoinClient {
  /**
   * One state disk per boot, the same in every attempt: a JoinService that admitted this node once (a ticket lost
   * on the way, or refused here) hands out tickets again only for the disk it admitted.
   */
  readonly #diskUuid = randomUUID();

  constructor(private readonly deps: JoinClientDeps) {}

  /** Retries over all discovered endpoints with backoff and jitter until joined, stopped or aborted. */
  async run(signal?: AbortSignal): Promise<void> {
    const log = this.deps.log.child({ component: 'join-client' });
    const delays = backoffDelays(this.deps.backoff ?? JOIN_BACKOFF);
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw new JoinStopped('join client stopped', 'aborted');
      if (this.deps.lock.holder === 'init')
        throw new JoinStopped('this node is being initialized; join client stops', 'lost-race');
      const endpoints = await this.deps.discover(signal).catch((err: Error) => {
        log.warn(`discovery failed: ${err.message}`);
        return [] as Endpoint[];
      });
      // Said once, then every tenth try: a node waiting for its control plane should not flood the journal.
      if (endpoints.length === 0 && (attempt === 1 || attempt % 10 === 0)) {
        log.info('no JoinService found yet; retrying', { attempt });
      }
      for (const endpoint of endpoints) {
        try {
          await this.joinVia(endpoint);
          return;
        } catch (err) {
          if (err instanceof JoinStopped) throw err;
          log.warn(`join via ${formatEndpoint(endpoint)} failed: ${(err as Error).message}`, {
            endpoint: formatEndpoint(endpoint),
            attempt,
          });
        }
      }
      await sleep(delays.next().value, undefined, { signal }).catch(() => {
        throw new JoinStopped('join client stopped', 'aborted');
      });
    }
  }

  async #attestTo(channel: AttestedChannel, client: JoinServiceClient): Promise<AttestationDocument> {
    const timeoutMs = this.deps.timeoutMs ?? 15_000;
    const identity = await this.deps.attester.identity();
    const challenge = await call(client.challenge.bind(client), { identity }, timeoutMs);
    return this.deps.attester.attest(challenge, channelUserData('client', spkiOf(channel.serverCertificate)));
  }

  /**
   * The JoinService must prove it holds this node's operator key (the metadata's `owner`), over a fresh nonce and
   * bound to the TLS key this channel pinned, before this node shows it anything or takes a ticket from it: a
   * JoinService of another operator built from the same image cannot, and is skipped.
   */
  async #checkOwner(channel: AttestedChannel, client: JoinServiceClient, endpoint: Endpoint): Promise<void> {
    const where = formatEndpoint(endpoint);
    if (!this.deps.metadata.owner) {
      throw new Error(
        `this node's metadata carries no operator commitment (owner); it joins no JoinService, ${where} skipped`,
      );
    }
    const owner = parseOwnerPublicKey(this.deps.metadata.owner);
    const nonce = randomBytes(OWNER_NONCE_BYTES);
    const proof = await call(client.proveOwner.bind(client), { nonce }, this.deps.timeoutMs ?? 15_000).catch(
      (err: Error) => {
        throw new Error(
          `JoinService ${where} cannot prove it belongs to this node's operator (${err.message}); skipped`,
        );
      },
    );
    if (!verifyOwnerProof(owner, nonce, spkiOf(channel.serverCertificate), proof.signature)) {
      throw new Error(
        `JoinService ${where} does not belong to this node's operator (its owner proof does not verify with the metadata's owner key); skipped`,
      );
    }
  }

  /** One complete join through one JoinService. */
  async joinVia(endpoint: Endpoint): Promise<void> {
    const { deps } = this;
    const log = deps.log.child({ component: 'join-client', endpoint: formatEndpoint(endpoint) });
    const timeoutMs = deps.timeoutMs ?? 15_000;
    // On disk before any JoinService sees it: a write that fails ends this attempt before a ticket is asked for.
    const diskUuid = deps.diskId ? await deps.diskId() : this.#diskUuid;
    const channel = await deps.openChannel(endpoint, await deps.serverVerifier());
    let ticket: IssueJoinTicketResponse;
    try {
      const client = new JoinServiceClient(
        formatEndpoint(endpoint),
        channel.credentials,
        channel.clientOptions,
      );
      await this.#checkOwner(channel, client, endpoint);
      const attestation = await this.#attestTo(channel, client);
      ticket = await call(
        client.issueJoinTicket.bind(client),
        {
          attestation,
          diskUuid,
          // what the provider told this node; the JoinService decides both from the operator's inventory
          isControlPlane: deps.metadata.role === 'control-plane',
          nodeName: deps.metadata.name,
        },
        timeoutMs,
      );
    } finally {
      channel.close();
    }
    if (!ticket.nodeName)
      throw new Error('the join ticket names no node (a JoinService of an older contract)');
    // Name and role are the JoinService's decision: the kubelet certificate it signed is for this name.
    const nodeName = ticket.nodeName;
    const controlPlane = ticket.isControlPlane;
    const role = controlPlane ? ('control-plane' as const) : ('worker' as const);
    if (nodeName !== deps.metadata.name || role !== deps.metadata.role) {
      log.warn(
        `the JoinService registered this node as ${nodeName} (${role}); the metadata says ${deps.metadata.name} (${deps.metadata.role})`,
      );
    }
    await this.#checkServerBoot(channel.attestation.pcrs);
    const clusterId = deriveClusterId(ticket.measurementSecret, ticket.measurementSalt);
    // The ticket names a cluster; the JoinService must have proven it belongs to that cluster.
    const servedPcr15 = channel.attestation.pcrs.get(CLUSTER_ID_PCR);
    if (!servedPcr15?.equals(clusterPcrValue(clusterId))) {
      throw new Error(
        'the JoinService is not a control plane of the cluster its ticket names (PCR 15 differs)',
      );
    }
    const node = {
      origin: 'join' as const,
      clusterId,
      role,
      measurementSalt: ticket.measurementSalt,
      diskUuid,
      ...(deps.disk ? { diskKey: ticket.stateDiskKey } : {}),
    };
    try {
      await runBootstrap(deps, node, [
        { step: 'install-components', run: () => deps.installComponents(ticket.kubernetesComponents) },
        { step: 'write-files', run: () => this.#writeFiles(ticket) },
        {
          step: 'kubeadm-join',
          run: () =>
            deps.runKubeadmJoin({
              nodeName,
              advertiseAddress: deps.metadata.advertiseAddress,
              apiServerEndpoint: ticket.apiServerEndpoint,
              token: ticket.token,
              caCertHash: ticket.discoveryTokenCaCertHash,
              controlPlane,
              bindPort: deps.apiServerPort,
              ...(deps.metadata.kubeadmTuning ? { tuning: deps.metadata.kubeadmTuning } : {}),
            }),
        },
        ...(controlPlane
          ? [{ step: 'join-service' as const, run: () => deps.onControlPlaneJoined(ticket.clusterSecrets) }]
          : []),
      ]);
    } catch (err) {
      if (err instanceof NodeLockedError) {
        log.info(`ticket discarded: ${err.message}`);
        throw new JoinStopped(`join ticket discarded: ${err.message}`, 'lost-race');
      }
      if (err instanceof BootstrapFailed) {
        throw new JoinStopped(`join failed at ${err.step}: ${err.reason}`, 'reset-required');
      }
      throw err;
    }
    log.info(`joined the cluster as ${role}`, { clusterId: clusterId.toString('hex'), node: nodeName });
    await this.#confirm(endpoint, diskUuid).then(
      () => log.info('join confirmed to the JoinService'),
      // The admission stays pending: only this TPM may replace it, and the first rejoin confirms it.
      (err: Error) => log.warn(`join not confirmed (admission stays pending): ${err.message}`),
    );
  }

  /** Tells the JoinService this node joined: a fresh attestation with PCR 15 = the cluster's value. */
  async #confirm(endpoint: Endpoint, diskUuid: string): Promise<void> {
    const channel = await this.deps.openChannel(endpoint, await this.deps.serverVerifier());
    try {
      const client = new JoinServiceClient(
        formatEndpoint(endpoint),
        channel.credentials,
        channel.clientOptions,
      );
      const attestation = await this.#attestTo(channel, client);
      await call(client.confirmJoin.bind(client), { attestation, diskUuid }, this.deps.timeoutMs ?? 15_000);
    } finally {
      channel.close();
    }
  }

  /**
   * A control plane's shared certificates. A worker writes nothing: kubeadm join takes the CA from discovery (pinned
   * by the ticket's hash) and the kubelet its client certificate from TLS bootstrap with the ticket's token.
   */
  async #writeFiles(ticket: IssueJoinTicketResponse): Promise<void> {
    const root = this.deps.rootfs;
    if (!ticket.isControlPlane) {
      if (ticket.controlPlaneFiles.length > 0 || ticket.clusterSecrets.length > 0)
        throw new Error('a worker ticket carries control-plane material');
      return;
    }
    // Checked before kubeadm runs: a control plane without the secrets could not serve joins after it joined.
    if (ticket.clusterSecrets.length === 0) throw new Error('control-plane ticket lacks the cluster secrets');
    // Only kubeadm's shared certificates go under /etc/kubernetes/pki; the cluster secrets (master secret) go to
    // the agent's state directory through onControlPlaneJoined, never next to what kubeadm and its pods read.
    await writeControlPlaneCertificates(join(root, 'etc/kubernetes/pki'), ticket.controlPlaneFiles);
  }

  /**
   * A node that was bootstrapped before: restore PCR 15 to its cluster, get the rejoin ticket, check the cluster it
   * names is the one this node joined (and the JoinService's PCR 15 says so), then start kubelet. Never runs
   * `kubeadm join` again.
   */
  async rejoin(state: NodeState, signal?: AbortSignal): Promise<IssueRejoinTicketResponse> {
    const { deps } = this;
    const log = deps.log.child({ component: 'rejoin' });
    const delays = backoffDelays(deps.backoff ?? JOIN_BACKOFF);
    // PCR 15 first: the JoinService gives a disk key only to a node whose quote shows it holds this cluster's lock.
    await this.#restoreClusterPcr(Buffer.from(state.clusterId, 'hex'));
    for (;;) {
      if (signal?.aborted) throw new JoinStopped('rejoin stopped', 'aborted');
      const endpoints = await deps.discover(signal).catch(() => [] as Endpoint[]);
      for (const endpoint of endpoints) {
        try {
          const ticket = await this.#rejoinVia(endpoint, state);
          await deps.unlockDisk?.(ticket.stateDiskKey);
          await deps.startKubelet();
          log.info('rejoined the cluster; kubelet started', { endpoint: formatEndpoint(endpoint) });
          return ticket;
        } catch (err) {
          // Every JoinService of the cluster derives the same key: asking another cannot help, the disk stays as is.
          if (err instanceof JoinStopped || err instanceof WrongDiskKeyError) throw err;
          log.warn(`rejoin via ${formatEndpoint(endpoint)} failed: ${(err as Error).message}`);
        }
      }
      await sleep(delays.next().value, undefined, { signal }).catch(() => {
        throw new JoinStopped('rejoin stopped', 'aborted');
      });
    }
  }

  async #rejoinVia(endpoint: Endpoint, state: NodeState): Promise<IssueRejoinTicketResponse> {
    const timeoutMs = this.deps.timeoutMs ?? 15_000;
    const channel = await this.deps.openChannel(endpoint, await this.deps.serverVerifier());
    try {
      const client = new JoinServiceClient(
        formatEndpoint(endpoint),
        channel.credentials,
        channel.clientOptions,
      );
      const attestation = await this.#attestTo(channel, client);
      const ticket = await call(
        client.issueRejoinTicket.bind(client),
        { attestation, diskUuid: state.diskUuid },
        timeoutMs,
      );
      await this.#checkServerBoot(channel.attestation.pcrs);
      const clusterId = deriveClusterId(ticket.measurementSecret, Buffer.from(state.measurementSalt, 'hex'));
      if (clusterId.toString('hex') !== state.clusterId) {
        throw new JoinStopped(
          'rejoin ticket names another cluster than this node joined; node needs reset',
          'reset-required',
        );
      }
      if (!channel.attestation.pcrs.get(CLUSTER_ID_PCR)?.equals(clusterPcrValue(clusterId))) {
        throw new Error("the JoinService is not a control plane of this node's cluster (PCR 15 differs)");
      }
      return ticket;
    } finally {
      channel.close();
    }
  }

  /** The JoinService must have booted what this node booted; the first PCR that differs is named. */
  async #checkServerBoot(served: Map<number, Buffer>): Promise<void> {
    for (const [index, own] of [...(await this.deps.readPcrs([...BOOT_PCRS]))].sort(([a], [b]) => a - b)) {
      if (!served.get(index)?.equals(own)) {
        throw new Error(
          `the JoinService booted something else than this node (PCR ${index} differs); ticket refused`,
        );
      }
    }
  }

  /** PCR 15 back to this node's cluster (see NodeLock.resume); another cluster there means the node needs reset. */
  async #restoreClusterPcr(clusterId: Buffer): Promise<void> {
    try {
      await this.deps.lock.resume(clusterId);
    } catch (err) {
      if (err instanceof ClusterPcrMismatchError) {
        throw new JoinStopped(`${err.message}; node needs reset`, 'reset-required');
      }
      throw err;
    }
  }
}
