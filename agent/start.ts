import type { AttestedChannel, Attester, Endpoint, PeerVerifier } from '../attestation/atls/index.js';
import type { Component } from './components/spec.js';
import { resumeControlPlane } from './controlplane/resume.js';
import { InitServer, type InitServerDeps } from './initserver/init-server.js';
import { JoinClient } from './joinclient/join-client.js';
import type { Kubeadm } from './kubeadm/driver.js';
import { rewriteKubeconfigServer } from './kubeadm/kubeconfig.js';
import type { Kubelet } from './kubeadm/kubelet.js';
import { kubeadmInit, kubeadmJoin } from './kubeadm/steps.js';
import { decideBoot, decideJoinEnd } from './lifecycle/decide.js';
import { resetStaleBootstrap } from './lifecycle/reset.js';
import type { Logger } from './log/index.js';
import type { InstanceMetadata } from './metadata/instance-metadata.js';
import { type ClusterPcr, NodeLock } from './nodelock/node-lock.js';
import type { ClusterSecrets, ClusterSecretsStore } from './state/cluster-secrets.js';
import type { NodeState, NodeStateStore } from './state/node-state.js';

/** Something started that `stop()` releases. */
export interface Running {
  close(): Promise<void>;
}

/**
 * The concrete node `main` picks (TPM via TCTI, metadata service, kubeadm binary, sockets, files) or a test's fakes.
 * Every member is a narrow seam; none decides anything about the node's life.
 */
export interface Platform {
  log: Logger;
  /** The node's TPM: all PCRs read for the log, PCR 15 for the lock, boot PCRs for the join client. */
  tpm: ClusterPcr & { readPcrs(indices?: number[]): Promise<Map<number, Buffer>> };
  state: Pick<NodeStateStore, 'load' | 'save' | 'clear'>;
  secrets: Pick<ClusterSecretsStore, 'load' | 'adopt'>;
  /** Reads the instance metadata (anew on every call). */
  metadata(): Promise<InstanceMetadata>;
  kubeadm: Pick<Kubeadm, 'init' | 'join' | 'reset' | 'adminKubeconfig'>;
  kubelet: Kubelet;
  installComponents(components: Component[]): Promise<void>;
  attester: Attester;
  /** How the join client checks a JoinService it talks to (EK chain, AK, quote bound to the channel). */
  joinServiceVerifier(): Promise<PeerVerifier>;
  openChannel(endpoint: Endpoint, verifier: PeerVerifier): Promise<AttestedChannel>;
  /** Finds JoinService endpoints; the metadata source among them reads the metadata anew each time. */
  discover(signal?: AbortSignal): Promise<Endpoint[]>;
  /** Refuses a measurements file from an init request that does not parse. */
  checkMeasurements(text: string): void;
  /** The node's gRPC server: attestation always, init when an init server is given. */
  serveNode(initServer?: InitServer): Promise<Running & { port: number }>;
  /** Persists the cluster secrets and serves joins with them. */
  startJoinService(secrets: ClusterSecrets, metadata: InstanceMetadata): Promise<Running & { port: number }>;
  apiServerPort: number;
  /** Root of the filesystem kubeadm writes to; the join client writes the ticket's files under it. */
  rootfs: string;
  /** Tells the service manager the agent is up (systemd's READY=1). */
  ready(): void;
  /** The agent's state directory (lifecycle/layout.ts): a reset removes the cluster's files from it. */
  stateDir: string;
  /**
   * This boot can no longer become a node (a join failed after the node lock took PCR 15): the agent ends so that
   * systemd's restart limit reboots the node, after which it joins again with the same disk ID.
   */
  rebootRequired(reason: string): void;
  /** Where the init server keeps its answer for the owner (a repeated init gets it, also after a restart). */
  initReplies: NonNullable<InitServerDeps['replies']>;
  /** The state-disk ID the join client shows JoinServices: persisted, surviving resets. */
  diskId(): Promise<string>;
  /** Join client retry pacing (agent/joinclient JOIN_BACKOFF on a node). */
  joinBackoff: { initialMs: number; maxMs: number };
}

export interface Agent {
  /** What this boot decided: fresh, reset (then fresh), or rejoin. */
  readonly boot: 'fresh' | 'reset' | 'rejoin';
  /** Settles when the background join client ends (joined, lost the race, failed, or stopped); never rejects. */
  readonly joinClientDone: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Composes the agent from `platform`, in the order a node lives it: read PCRs → decide → (fresh: init server and
 * join client side by side | rejoin: resume the control plane or ask a JoinService) → ready. The decisions live
 * in the modules it calls (decideBoot, resetStaleBootstrap, NodeLock, InitServer, JoinClient, resumeControlPlane);
 * this only wires.
 * On a failure to start, everything started so far is stopped and the error is thrown.
 */
export async function startAgent(platform: Platform, signal?: AbortSignal): Promise<Agent> {
  const { log } = platform;
  const running: Running[] = [];
  const abort = new AbortController();
  const onAbort = () => abort.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  const stop = async () => {
    signal?.removeEventListener('abort', onAbort);
    abort.abort();
    for (const part of running.reverse()) await part.close().catch(() => {});
  };
  try {
    const pcrs = await platform.tpm.readPcrs();
    log.info(
      'measurements read',
      Object.fromEntries([...pcrs].map(([i, v]) => [`pcr${i}`, v.toString('hex')])),
    );
    // Read once here so a node with unusable metadata fails at start, with the reason, rather than later.
    const metadata = await platform.metadata();
    const lock = new NodeLock(platform.tpm);
    const action = decideBoot(await platform.state.load(), await lock.pristine());
    log.info(`boot decision: ${action.kind}`, 'reason' in action ? { reason: action.reason } : {});
    const startJoinService = async (secrets: ClusterSecrets) => {
      running.push(await platform.startJoinService(secrets, metadata));
    };
    const joinClient = new JoinClient({
      log,
      metadata,
      lock,
      state: platform.state,
      rootfs: platform.rootfs,
      apiServerPort: platform.apiServerPort,
      attester: platform.attester,
      serverVerifier: () => platform.joinServiceVerifier(),
      readPcrs: (indices) => platform.tpm.readPcrs(indices),
      openChannel: (endpoint, verifier) => platform.openChannel(endpoint, verifier),
      discover: (s) => platform.discover(s),
      installComponents: (components) => platform.installComponents(components),
      runKubeadmJoin: (input) => kubeadmJoin(platform.kubeadm, input),
      resetKubernetes: () => platform.kubeadm.reset(),
      startKubelet: () => platform.kubelet.start(),
      onControlPlaneJoined: async (file) => startJoinService(await platform.secrets.adopt(file)),
      backoff: platform.joinBackoff,
      diskId: () => platform.diskId(),
    });
    let joinClientDone: Promise<void> = Promise.resolve();
    switch (action.kind) {
      case 'reboot-required':
        throw new Error(`${action.reason}; reboot the node to reset its TPM state`);
      case 'rejoin':
        await rejoin(action.state);
        break;
      case 'reset':
        await resetStaleBootstrap({
          log,
          kubeadm: platform.kubeadm,
          state: platform.state,
          stateDir: platform.stateDir,
        });
        joinClientDone = (await startFresh()).joinClientDone;
        break;
      case 'fresh':
        joinClientDone = (await startFresh()).joinClientDone;
        break;
    }
    platform.ready();
    return { boot: action.kind, joinClientDone, stop };

    /** Init server and join client side by side; the join client runs on in the background. */
    async function startFresh(): Promise<{ joinClientDone: Promise<void> }> {
      const server = await platform.serveNode(initServer());
      running.push(server);
      log.info('init server listening', { port: server.port });
      const done = joinClient.run(abort.signal).then(
        () => log.info('join client finished: node joined'),
        (err: unknown) => {
          const end = decideJoinEnd(err);
          if (end.kind === 'stopped') log.info(end.message);
          else if (end.kind === 'reboot-required') platform.rebootRequired(end.reason);
          else log.error(end.message);
        },
      );
      return { joinClientDone: done };
    }

    function initServer(): InitServer {
      return new InitServer({
        log,
        metadata,
        lock,
        state: platform.state,
        apiServerPort: platform.apiServerPort,
        checkMeasurements: (text) => platform.checkMeasurements(text),
        installComponents: (components) => platform.installComponents(components),
        runKubeadmInit: (input) => kubeadmInit(platform.kubeadm, input),
        rewriteKubeconfigServer,
        startJoinService,
        resetKubernetes: () => platform.kubeadm.reset(),
        replies: platform.initReplies,
      });
    }

    async function rejoin(state: NodeState): Promise<void> {
      const resumed = await resumeControlPlane(state, {
        log,
        secrets: platform.secrets,
        lock,
        startJoinService,
        kubelet: platform.kubelet,
      });
      if (resumed) {
        // The init port again: attestation for `verify`, and its owner's repeated init answered with the kept
        // result (an operator whose CLI never saw it fetches it here); nobody else gets anything from it.
        const server = await platform.serveNode(initServer());
        running.push(server);
        log.info('init server listening', { port: server.port });
        return;
      }
      await joinClient.rejoin(state, abort.signal);
      const server = await platform.serveNode();
      running.push(server);
      log.info('attestation service listening', { port: server.port });
    }
  } catch (err) {
    await stop();
    throw err;
  }
}
