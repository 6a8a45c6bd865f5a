import type { NodeRole } from '../../common/contracts/node-role.js';
import type { Logger } from '../log/index.js';
import type { NodeLock } from '../nodelock/node-lock.js';
import type { NodeStateStore } from '../state/node-state.js';
import { type Origin, RUNNING_PHASE, type Step } from './phases.js';

/** One step after the point of no return: its name (recorded as `failedStep` when it throws) and its work. */
export interface BootstrapStep {
  step: Step;
  run(): Promise<unknown>;
}

/** What the node records about the cluster it is becoming part of. */
export interface BootstrapNode {
  origin: Origin;
  clusterId: Buffer;
  role: NodeRole;
  measurementSalt: Buffer;
  diskUuid: string;
  /** The cluster's key for that disk (the init's own derivation, the join ticket's); needed when deps.disk is. */
  diskKey?: Buffer;
}

/** The node's state disk as a bootstrap changes it (agent/disk/disk-mapper.ts). */
export interface BootstrapDisk {
  /** After every other step: keyslot 0 takes `diskKey`, the token says initialized. */
  commit(diskKey: Buffer): Promise<void>;
  /** On a failure after the lock: the token says uninitialized again, in the header, so the next boot formats. */
  markForReset(): Promise<void>;
}

export interface BootstrapDeps {
  log: Logger;
  lock: Pick<NodeLock, 'acquire'>;
  state: Pick<NodeStateStore, 'save'>;
  /** Undoes what kubeadm may have half-done (kubeadm reset); best effort. */
  resetKubernetes(): Promise<void>;
  /** The state disk, on a node that has one: committed last, marked for reset on any failure. */
  disk?: BootstrapDisk;
}

/**
 * A step failed after the lock: the node is marked `reset-required` with the step (unless the mark itself could not
 * be written, `marked` false), kubeadm was reset, and the lock stays taken, so only a reboot (PCR 15 back to zero,
 * then decideBoot's reset) makes the node bootstrappable again.
 */
export class BootstrapFailed extends Error {
  constructor(
    readonly origin: Origin,
    readonly step: Step,
    cause: unknown,
    readonly marked: boolean,
  ) {
    super(`${step}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'BootstrapFailed';
  }

  /** The cause's own words, without the step. */
  get reason(): string {
    return this.message.slice(this.step.length + 2);
  }
}

/**
 * The node's point of no return, for init and join alike: take the node lock (PCR 15 := cluster ID), record the
 * running phase, run `steps` in order, record `bootstrapped`. Anything thrown before the lock is taken
 * (NodeLockedError, a TPM that cannot extend) leaves the node as it was and propagates as is; from the lock on,
 * every failure ends in the one epilogue below and a BootstrapFailed.
 */
export async function runBootstrap(
  deps: BootstrapDeps,
  node: BootstrapNode,
  steps: readonly BootstrapStep[],
): Promise<void> {
  const { log, disk } = deps;
  const { diskKey } = node;
  // Refused before the lock: a disk that could not be committed would end every bootstrap in a reset.
  if (disk && diskKey?.length !== 32)
    throw new Error(
      `disk key: expected 32 bytes for state disk ${node.diskUuid}, got ${diskKey?.length ?? 'none'}`,
    );
  const clusterId = node.clusterId.toString('hex');
  await deps.lock.acquire(node.origin, node.clusterId);
  log.info(`node lock taken for ${node.origin}`, { clusterId });
  const record = {
    role: node.role,
    origin: node.origin,
    clusterId,
    measurementSalt: node.measurementSalt.toString('hex'),
    diskUuid: node.diskUuid,
  };
  const all: readonly BootstrapStep[] = [
    { step: 'persist-state', run: () => deps.state.save({ ...record, phase: RUNNING_PHASE[node.origin] }) },
    ...steps,
    // Last before "bootstrapped": a node that says so always has its disk under the cluster's key.
    ...(disk && diskKey ? [{ step: 'disk-commit' as const, run: () => disk.commit(diskKey) }] : []),
    { step: 'persist-state', run: () => deps.state.save({ ...record, phase: 'bootstrapped' }) },
  ];
  let current: Step = 'persist-state';
  try {
    for (const s of all) {
      current = s.step;
      await s.run();
    }
  } catch (err) {
    // Marked before it is said, so whoever reads the log line finds the state it announces.
    const stateMarked = await deps.state
      .save({ ...record, phase: 'reset-required', failedStep: current })
      .then(
        () => true,
        (e: Error) => {
          log.error(`cannot mark node for reset: ${e.message}; a reboot resets it all the same`);
          return false;
        },
      );
    const diskMarked = disk
      ? await disk.markForReset().then(
          () => true,
          (e: Error) => {
            log.error(`cannot mark state disk ${node.diskUuid} for reset: ${e.message}`);
            return false;
          },
        )
      : true;
    const marked = stateMarked && diskMarked;
    await deps.resetKubernetes().catch((e: Error) => log.warn(`kubeadm reset failed: ${e.message}`));
    const failed = new BootstrapFailed(node.origin, current, err, marked);
    log.error(
      `${node.origin} failed at ${current}: ${failed.reason}; node ${marked ? '' : 'NOT '}marked for reset; reboot the node before it can bootstrap again`,
      { step: current },
    );
    throw failed;
  }
}
