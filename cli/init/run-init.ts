// `sextant init` as steps over its two neighbours, the node and the workspace's files, so that each step is a
// table test in-process: where the request goes (a pending record is finished first), what the outcome prints and
// exits with, what Ctrl-C does, and what the workspace holds after a success.
import { randomBytes } from 'node:crypto';
import { AttestedChannelError } from '../../attestation/atls/index.js';
import type { InitRemedy } from '../../common/contracts/init-remedy.js';
import { faultPoint } from '../../common/fault-hook.js';
import {
  deriveClusterId,
  deriveMeasurementSecret,
  deriveOwnerId,
  type MasterSecret,
  SALT_BYTES,
} from '../../common/keys.js';
import { type Endpoint, parseEndpoint } from '../../common/net.js';
import { secretsEqual } from '../../common/secrets.js';
import type { InitRequest, InitSuccess } from '../../gen/proto/init.js';
import type { Writer } from '../commands/context.js';
import type { PendingInit } from '../workspace/init-pending.js';
import type { ClusterState } from '../workspace/state.js';
import {
  InitConnectionLostError,
  InitFailedError,
  InitInterruptedError,
  InitRefusedError,
  InitTimeoutError,
} from './init-cluster.js';

/** The workspace files init reads and writes. */
export interface InitFiles {
  loadPending(): Promise<PendingInit | undefined>;
  savePending(pending: PendingInit): Promise<void>;
  clearPending(): Promise<void>;
  /** The master secret, created if absent; `source` says where it is kept, for the progress line. */
  masterSecret(): Promise<{ secret: MasterSecret; created: boolean; source: string }>;
  writeAdminConf(kubeconfig: Uint8Array): Promise<void>;
  saveState(state: ClusterState): Promise<void>;
}

export interface NodeCallbacks {
  /** Makes the request once the node's attestation checked out; nothing is sent before it returns. */
  request: () => Promise<InitRequest>;
  signal: AbortSignal;
  onLog(line: string): void;
  onRetry(attempt: number, reason: string): void;
}

/** The node: attests it, sends the request, resolves with its success or rejects with init-cluster's errors. */
export type InitNode = (endpoint: Endpoint, callbacks: NodeCallbacks) => Promise<InitSuccess>;

/** Where Ctrl-C is heard; tests emit on their own emitter. */
export interface InterruptSource {
  on(event: 'SIGINT', listener: () => void): unknown;
  off(event: 'SIGINT', listener: () => void): unknown;
}

export interface InitRun {
  workspace: string;
  files: InitFiles;
  node: InitNode;
  /** The request for these secrets (config, init secret and measurements are the caller's). */
  buildRequest(secrets: { master: MasterSecret; measurementSalt: Buffer }): InitRequest;
  /** The first control plane's init endpoint, when neither the operator nor a pending record names one. */
  defaultEndpoint(): Promise<string>;
  initPort: number;
  /** The endpoint the operator named (--endpoint), and --force. */
  endpoint?: string;
  force: boolean;
  interrupts: InterruptSource;
  progress(message: string): void;
  stdout: Writer;
  stderr: Writer;
  now?: () => Date;
}

/** Where this init sends its request. */
export type Target =
  | { kind: 'resume'; node: string; pending: PendingInit }
  | { kind: 'new'; node: string | undefined }
  | { kind: 'conflict'; message: string };

/**
 * A pending record is an init this workspace sent and has no result of: a plain rerun finishes it (the node keeps
 * its answer for its owner). Only an explicit other endpoint with --force abandons it.
 */
export function chooseTarget(
  pending: PendingInit | undefined,
  endpoint: string | undefined,
  force: boolean,
): Target {
  if (pending === undefined) return { kind: 'new', node: endpoint };
  if (endpoint === undefined || endpoint === pending.node) {
    return { kind: 'resume', node: pending.node, pending };
  }
  if (force) return { kind: 'new', node: endpoint };
  return {
    kind: 'conflict',
    message: `an init sent to ${pending.node} (${pending.startedAt.toISOString()}) has no result in this workspace yet; run init without --endpoint (or --endpoint ${pending.node}) to fetch it, or --force to abandon it and initialize ${endpoint}`,
  };
}

/** What the operator can do next, from what the node said to do (never from its wording). */
export function hintFor(remedy: InitRemedy | undefined): string | undefined {
  switch (remedy) {
    case 'reboot':
      return 'hint: the node asks to be rebooted (its TPM state can only be reset by a reboot): reboot or recreate the node, then run init again';
    case 'retry-later':
      return 'hint: the node is initializing already; if this workspace sent that init, run init again later to fetch the result';
    case undefined:
      return undefined;
  }
}

/** How an init that did not succeed ends: what is printed, the exit code, and whether the pending record goes. */
export interface Outcome {
  code: number;
  lines: string[];
  /** The node has no result to fetch later (it failed, refused, or never got the request). */
  clearPending: boolean;
}

/** The outcome of an error from the node step; undefined for an error that is not init's (rethrown). */
export function outcomeOf(err: unknown, resuming: boolean): Outcome | undefined {
  const withHint = (lines: string[], remedy: InitRemedy | undefined) => {
    const hint = hintFor(remedy);
    return hint ? [...lines, hint] : lines;
  };
  if (err instanceof InitFailedError) {
    // The node marked itself for reset: there is no result to fetch later.
    const lines = [`init failed at step "${err.step}": ${err.message}`, "the node's log:"];
    for (const line of err.logs) lines.push(`  ${line}`);
    return { code: 1, lines: withHint(lines, err.remedy), clearPending: true };
  }
  // A refusal of this very request: nothing of it happened there. A record from an earlier run stays.
  if (err instanceof InitRefusedError) {
    return {
      code: 1,
      lines: withHint([`the node refused init: ${err.message}`], err.remedy),
      clearPending: !resuming,
    };
  }
  if (err instanceof InitConnectionLostError || err instanceof InitTimeoutError) {
    return { code: 1, lines: [err.message], clearPending: false };
  }
  if (err instanceof InitInterruptedError) {
    return { code: 130, lines: [err.message], clearPending: !err.sent && !resuming };
  }
  if (err instanceof AttestedChannelError) {
    return { code: 1, lines: [`nothing was sent: ${err.message}`], clearPending: !resuming };
  }
  return undefined;
}

/**
 * Ctrl-C while init runs: before the request is sent it stops the command (nothing reached the node); after, the
 * first one says the node goes on and keeps waiting, the second stops waiting.
 */
export function watchInterrupts(
  interrupts: InterruptSource,
  options: { stderr: Writer; node: string },
): { signal: AbortSignal; markSent(): void; stop(): void } {
  const controller = new AbortController();
  let sent = false;
  let count = 0;
  const onInterrupt = () => {
    count += 1;
    if (sent && count === 1) {
      options.stderr.write(
        `init is running on ${options.node}: the node finishes it whether or not this command waits. Waiting for its answer to write sextant-admin.conf; press Ctrl-C again to stop waiting (then run init again to fetch the result)\n`,
      );
      return;
    }
    controller.abort();
  };
  interrupts.on('SIGINT', onInterrupt);
  return {
    signal: controller.signal,
    markSent: () => {
      sent = true;
      count = 0;
    },
    stop: () => interrupts.off('SIGINT', onInterrupt),
  };
}

/**
 * Writes what the node answered, in an order every kill point recovers from: the pending record stays until the
 * state is written, so a rerun fetches the kept answer again and rewrites both.
 */
export async function recordSuccess(
  files: InitFiles,
  success: InitSuccess,
  sent: { master: MasterSecret; measurementSalt: Buffer; node: string; createdAt: Date },
): Promise<ClusterState | undefined> {
  // The node derived the cluster ID from what we sent; a different answer means it is not the node we think.
  const clusterId = deriveClusterId(deriveMeasurementSecret(sent.master), sent.measurementSalt);
  const ownerId = deriveOwnerId(sent.master);
  if (!secretsEqual(clusterId, success.clusterId) || !secretsEqual(ownerId, success.ownerId))
    return undefined;
  await files.writeAdminConf(success.kubeconfig);
  faultPoint('cli-init:admin-conf-written');
  const state: ClusterState = {
    clusterId,
    ownerId,
    endpoint: success.endpoint,
    initNode: sent.node,
    createdAt: sent.createdAt,
  };
  await files.saveState(state);
  faultPoint('cli-init:state-written');
  await files.clearPending();
  return state;
}

/** Runs init with the workspace lock held; returns the exit code. */
export async function runInitSteps(run: InitRun): Promise<number> {
  const now = run.now ?? (() => new Date());
  const target = chooseTarget(await run.files.loadPending(), run.endpoint, run.force);
  if (target.kind === 'conflict') {
    run.stderr.write(`${target.message}\n`);
    return 1;
  }
  const resuming = target.kind === 'resume';
  const node = target.node ?? (await run.defaultEndpoint());
  let endpoint: Endpoint;
  try {
    endpoint = parseEndpoint(node, run.initPort);
  } catch (err) {
    throw new Error(`init endpoint ${node}: ${(err as Error).message}`);
  }
  if (resuming) {
    run.progress(
      `an init sent to ${node} at ${target.pending.startedAt.toISOString()} has no result here yet: asking the node for it`,
    );
  }
  const measurementSalt = resuming ? target.pending.measurementSalt : randomBytes(SALT_BYTES);
  let master: MasterSecret | undefined;
  const interrupts = watchInterrupts(run.interrupts, { stderr: run.stderr, node });

  // The master secret is made once the node's attestation checked out, so a refused node leaves none behind.
  const request = async () => {
    const loaded = await run.files.masterSecret();
    master = loaded.secret;
    run.progress(`${loaded.created ? 'created' : 'reusing'} the master secret (${loaded.source})`);
    // Recorded before anything is sent: an answer lost from here on can be fetched by the next init.
    if (!resuming) await run.files.savePending({ node, measurementSalt, startedAt: now() });
    interrupts.markSent();
    return run.buildRequest({ master, measurementSalt });
  };

  let success: InitSuccess;
  try {
    success = await run.node(endpoint, {
      request,
      signal: interrupts.signal,
      onLog: (line) => run.progress(`node: ${line}`),
      onRetry: (attempt, reason) => run.progress(`node not reachable yet (attempt ${attempt}): ${reason}`),
    });
  } catch (err) {
    const outcome = outcomeOf(err, resuming);
    if (!outcome) throw err;
    if (outcome.clearPending) await run.files.clearPending();
    for (const line of outcome.lines) run.stderr.write(`${line}\n`);
    return outcome.code;
  } finally {
    interrupts.stop();
  }

  if (!master) throw new Error('init succeeded without a request being sent');
  const state = await recordSuccess(run.files, success, {
    master,
    measurementSalt,
    node,
    createdAt: now(),
  });
  if (!state) {
    run.stderr.write(
      'the node answered with a cluster ID or owner ID that does not derive from this workspace\n',
    );
    return 1;
  }
  run.stdout.write(
    [
      `cluster ID: ${state.clusterId.toString('hex')}`,
      `owner ID: ${state.ownerId.toString('hex')}`,
      `API server: ${state.endpoint}`,
      `kubeconfig: ${run.workspace}/sextant-admin.conf`,
      `state: ${run.workspace}/sextant-state.yaml`,
      '',
    ].join('\n'),
  );
  return 0;
}
