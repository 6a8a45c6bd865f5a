import { createHash, randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { INIT_REMEDY_METADATA, type InitRemedy } from '../../common/contracts/init-remedy.js';
import { deriveOwnerSeed } from '../../common/contracts/owner.js';
import { StatusError, toServiceError } from '../../common/grpc.js';
import { deriveClusterId, deriveDiskKey, deriveMeasurementSecret, deriveOwnerId } from '../../common/keys.js';
import { formatEndpoint } from '../../common/net.js';
import { secretsEqual } from '../../common/secrets.js';
import type { InitRequest, InitResponse, InitServiceServer } from '../../gen/proto/init.js';
import type { Component } from '../components/spec.js';
import { faultPoint } from '../fault-hook.js';
import type { InitConfigInput } from '../kubeadm/config-input.js';
import type { Step } from '../lifecycle/phases.js';
import { type BootstrapDisk, BootstrapFailed, runBootstrap } from '../lifecycle/transaction.js';
import type { Logger } from '../log/index.js';
import type { InstanceMetadata } from '../metadata/instance-metadata.js';
import { type NodeLock, NodeLockedError } from '../nodelock/node-lock.js';
import type { ClusterSecrets } from '../state/cluster-secrets.js';
import type { NodeStateStore } from '../state/node-state.js';
import { openInitReply, type SealedInitReply, sameOwner, sealInitReply } from './init-reply.js';
import { type InitPlan, InitRequestError, validateInitRequest } from './init-request.js';

/**
 * What `kubeadm init` needs to know, beyond the request: the kubeadm configuration's input, pod CIDR decided, and
 * the platform's tuning when its metadata names one.
 */
export type InitKubeadmInput = Pick<InitConfigInput, 'tuning'> &
  Required<
    Pick<
      InitConfigInput,
      | 'nodeName'
      | 'advertiseAddress'
      | 'bindPort'
      | 'clusterName'
      | 'kubernetesVersion'
      | 'serviceCidr'
      | 'podCidr'
      | 'apiServerCertSans'
      | 'controlPlaneEndpoint'
    >
  >;

/** The node's neighbours the init steps drive; tests replace each with a fake. */
export interface InitServerDeps {
  log: Logger;
  metadata: InstanceMetadata;
  lock: NodeLock;
  state: Pick<NodeStateStore, 'save'>;
  apiServerPort: number;
  checkMeasurements(text: string): void;
  installComponents(components: Component[]): Promise<void>;
  /** Renders kubeadm's configuration and runs `kubeadm init`; resolves to the admin kubeconfig. */
  runKubeadmInit(input: InitKubeadmInput): Promise<Buffer>;
  rewriteKubeconfigServer(kubeconfig: Buffer, endpoint: string): Buffer;
  /** Persists what the JoinService needs and starts it. */
  startJoinService(secrets: ClusterSecrets): Promise<void>;
  /** Undo what kubeadm may have half-done (kubeadm reset). Best effort. */
  resetKubernetes(): Promise<void>;
  /**
   * Where the success reply is kept, sealed to its owner, so that a repeated init from the same owner (whose CLI
   * never saw the answer) gets it again, also after an agent restart.
   */
  replies?: { load(): Promise<SealedInitReply | undefined>; save(sealed: SealedInitReply): Promise<void> };
  /** The node's state disk (its LUKS UUID is the disk ID): committed to the key the master secret derives for it. */
  disk?: BootstrapDisk & { readonly uuid: string };
}

type Writer = { write(msg: InitResponse): boolean };

/**
 * The init server: turns this fresh node into the first control plane when the operator's CLI asks.
 * Every check that can refuse without consequence (fields, init secret, component downloads and hashes) runs
 * before the node lock; from the lock on it is a list of steps for runBootstrap (lifecycle/transaction.ts).
 */
export class InitServer {
  #busy = false;
  /** The step an init of this boot failed at: the node then needs a reboot before it can be initialized. */
  #failedStep: Step | undefined;

  constructor(private readonly deps: InitServerDeps) {}

  service(): InitServiceServer {
    return { init: (call) => void this.#handle(call) };
  }

  async #handle(call: grpc.ServerWritableStream<InitRequest, InitResponse>): Promise<void> {
    try {
      await this.init(call.request, call);
    } catch (err) {
      // grpc-js turns an 'error' event carrying a code into the call's status.
      const status = toServiceError(err, statusOf);
      const remedy = remedyOf(err);
      if (remedy) status.metadata.set(INIT_REMEDY_METADATA, remedy);
      call.emit('error', status);
      return;
    }
    call.end();
  }

  /** Runs one init; resolves after streaming success or failure, rejects with a gRPC-mappable error before the lock. */
  async init(req: InitRequest, out: Writer): Promise<void> {
    const log = this.deps.log.child({ component: 'init-server' });
    // Checks before the lock: a refused request leaves the node exactly as it was.
    const plan = validateInitRequest(req, this.deps.checkMeasurements);
    const presented = createHash('sha256').update(plan.initSecret).digest();
    if (!secretsEqual(presented, Buffer.from(this.deps.metadata.initSecretHash, 'hex'))) {
      log.warn('init refused: init secret does not match the instance metadata');
      throw new InitRefusedError(grpc.status.PERMISSION_DENIED, 'init secret does not match this node');
    }
    if (this.#busy || this.deps.lock.holder !== null) {
      if (!this.#busy && (await this.#answerRepeat(plan, out, log))) return;
      if (this.#failedStep !== undefined) {
        throw new InitRefusedError(
          grpc.status.FAILED_PRECONDITION,
          `init failed at ${this.#failedStep} in this boot; reboot the node to reset its TPM state, then run init again`,
          'reboot',
        );
      }
      throw new NodeLockedError(this.deps.lock.holder ?? 'init');
    }
    const measurementSecret = deriveMeasurementSecret(plan.masterSecret);
    const clusterId = deriveClusterId(measurementSecret, plan.measurementSalt);
    const ownerId = deriveOwnerId(plan.masterSecret);
    const progress = (line: string) => {
      log.info(line);
      out.write({ kind: { $case: 'log', value: { line } } });
    };
    this.#busy = true;
    try {
      // Components are fetched and hash-checked before the point of no return: the install is all or nothing,
      // so a bad URL or hash refuses the init and leaves the node initializable.
      progress(`installing ${plan.components.length} Kubernetes component(s)`);
      await this.deps.installComponents(plan.components).catch((err: Error) => {
        throw new InitRefusedError(grpc.status.INVALID_ARGUMENT, `kubernetes_components: ${err.message}`);
      });
      const endpoint = formatEndpoint({
        host: this.deps.metadata.advertiseAddress,
        port: this.deps.apiServerPort,
      });
      let adminConf: Buffer = Buffer.alloc(0);
      let kubeconfig: Buffer = Buffer.alloc(0);
      const success = () => ({ kubeconfig, clusterId, ownerId, endpoint });
      const replies = this.deps.replies;
      const diskUuid = this.deps.disk?.uuid ?? randomUUID();
      const node = {
        origin: 'init' as const,
        clusterId,
        role: 'control-plane' as const,
        measurementSalt: plan.measurementSalt,
        diskUuid,
        // The JoinService's derivation for this UUID: its rejoin ticket then opens this disk.
        ...(this.deps.disk ? { diskKey: deriveDiskKey(plan.masterSecret, diskUuid) } : {}),
      };
      try {
        await runBootstrap(this.deps, node, [
          {
            step: 'kubeadm-init',
            run: async () => {
              progress(`running kubeadm init for Kubernetes ${plan.kubernetesVersion}`);
              adminConf = await this.deps.runKubeadmInit(
                kubeadmInput(plan, this.deps.metadata, this.deps.apiServerPort, endpoint),
              );
            },
          },
          {
            step: 'kubeconfig',
            run: async () => {
              kubeconfig = this.deps.rewriteKubeconfigServer(adminConf, endpoint);
            },
          },
          {
            step: 'join-service',
            run: () => {
              progress('starting the JoinService');
              return this.deps.startJoinService(clusterSecretsOf(plan, endpoint));
            },
          },
          // Kept before "bootstrapped" is: a node that says it is initialized always has the answer for its owner.
          ...(replies
            ? [
                {
                  step: 'persist-reply' as const,
                  run: () => replies.save(sealInitReply(success(), plan.initSecret, plan.masterSecret)),
                },
              ]
            : []),
        ]);
      } catch (err) {
        if (!(err instanceof BootstrapFailed)) throw err;
        this.#failedStep = err.step;
        out.write({
          kind: {
            $case: 'failure',
            value: {
              step: err.step,
              message: `${err.message}; reboot the node to reset its TPM state before init can run again`,
              logs: this.deps.log.recent(200),
              remedy: 'reboot' satisfies InitRemedy,
            },
          },
        });
        return;
      }
      log.info('cluster initialized', { clusterId: clusterId.toString('hex'), endpoint });
      faultPoint('init:bootstrapped');
      out.write({ kind: { $case: 'success', value: success() } });
    } finally {
      this.#busy = false;
    }
  }

  /**
   * A repeated init after this node was initialized: the same owner (init secret and master secret) gets the
   * answer it may have missed; anyone else a refusal. False when there is no kept answer to give.
   */
  async #answerRepeat(plan: InitPlan, out: Writer, log: Logger): Promise<boolean> {
    const sealed = await this.deps.replies?.load();
    if (!sealed) return false;
    const reply = sameOwner(sealed, plan.masterSecret)
      ? openInitReply(sealed, plan.initSecret, plan.masterSecret)
      : undefined;
    if (!reply) {
      log.warn('init refused: this node was initialized by another owner');
      throw new InitRefusedError(
        grpc.status.FAILED_PRECONDITION,
        'node is already initialized, by another owner (master secret)',
      );
    }
    const line = 'init already done: answering with the result kept for its owner';
    log.info(line);
    out.write({ kind: { $case: 'log', value: { line } } });
    out.write({ kind: { $case: 'success', value: reply } });
    return true;
  }
}

/** What the JoinService keeps and serves joins with. */
function clusterSecretsOf(plan: InitPlan, endpoint: string): ClusterSecrets {
  return {
    masterSecret: plan.masterSecret,
    measurementSalt: plan.measurementSalt,
    measurements: plan.measurements,
    kubernetesVersion: plan.kubernetesVersion,
    components: plan.components,
    apiServerEndpoint: endpoint,
    clusterName: plan.clusterName,
    // The init secret proved this request is the operator's: its owner key lets the JoinService prove that.
    ownerSeed: deriveOwnerSeed(plan.initSecret),
  };
}

function kubeadmInput(
  plan: InitPlan,
  meta: InstanceMetadata,
  bindPort: number,
  endpoint: string,
): InitKubeadmInput {
  return {
    nodeName: meta.name,
    advertiseAddress: meta.advertiseAddress,
    bindPort,
    clusterName: plan.clusterName,
    kubernetesVersion: plan.kubernetesVersion,
    serviceCidr: plan.serviceCidr,
    podCidr: plan.podCidr,
    apiServerCertSans: plan.apiServerCertSans,
    controlPlaneEndpoint: endpoint,
    ...(meta.kubeadmTuning ? { tuning: meta.kubeadmTuning } : {}),
  };
}

export class InitRefusedError extends StatusError {
  override name = 'InitRefusedError';
  constructor(
    code: grpc.status,
    message: string,
    readonly remedy?: InitRemedy,
  ) {
    super(code, message);
  }
}

/** What the operator can do about a refusal, sent beside its status. */
function remedyOf(err: unknown): InitRemedy | undefined {
  if (err instanceof InitRefusedError) return err.remedy;
  if (err instanceof NodeLockedError && err.holder === 'init') return 'retry-later';
  return undefined;
}

/** The status of what the init steps throw besides refusals. */
function statusOf(err: unknown): grpc.status | undefined {
  if (err instanceof NodeLockedError) return grpc.status.FAILED_PRECONDITION;
  if (err instanceof InitRequestError) {
    return err.unsupported ? grpc.status.UNIMPLEMENTED : grpc.status.INVALID_ARGUMENT;
  }
  return undefined;
}
