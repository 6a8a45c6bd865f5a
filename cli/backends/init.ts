// `sextant init` against a real node: secrets from the workspace, the node attested against the config, the
// request sent only over that attested channel, and the workspace written only after the node said success.
import { randomBytes } from 'node:crypto';
import { AttestedChannelError } from '../../attestation/atls/index.js';
import { formatMeasurementsFile } from '../../attestation/measurements.js';
import { removeStaleTempFiles } from '../../common/atomic-file.js';
import {
  deriveClusterId,
  deriveMeasurementSecret,
  deriveOwnerId,
  type MasterSecret,
  SALT_BYTES,
} from '../../common/keys.js';
import { type Endpoint, parseEndpoint } from '../../common/net.js';
import { secretsEqual } from '../../common/secrets.js';
import type { InitRequest } from '../../gen/proto/init.js';
import type { InitOptions } from '../commands/backends.js';
import type { CommandContext } from '../commands/context.js';
import { loadConfig } from '../config/file.js';
import type { SextantConfig } from '../config/schema.js';
import {
  InitConnectionLostError,
  InitFailedError,
  InitInterruptedError,
  InitRefusedError,
  InitTimeoutError,
  initCluster,
} from '../init/init-cluster.js';
import { loadOrCreateMasterSecret } from '../kms/master-secret.js';
import { parseKmsUri } from '../kms/uri.js';
import { clearPendingInit, loadPendingInit, savePendingInit } from '../workspace/init-pending.js';
import { loadInitSecret } from '../workspace/init-secret.js';
import { lockWorkspace } from '../workspace/lock.js';
import { INIT_SECRET_FILE } from '../workspace/paths.js';
import { saveState } from '../workspace/state.js';
import { writeAdminConf } from '../workspace/workspace.js';
import { configuredVerifier } from './attestation.js';
import { firstControlPlane } from './first-node.js';

/** The request the agent's init server expects (agent/initserver/init-request.ts validates each field). */
export function buildInitRequest(
  config: SextantConfig,
  secrets: { initSecret: Buffer; masterKey: Buffer; masterSalt: Buffer; measurementSalt: Buffer },
  measurementsFile: Buffer,
): InitRequest {
  const k = config.kubernetes;
  return {
    initSecret: secrets.initSecret,
    keySource: { $case: 'masterSecret', value: { key: secrets.masterKey, salt: secrets.masterSalt } },
    measurementSalt: secrets.measurementSalt,
    kubernetesVersion: k.version,
    kubernetesComponents: k.components.map((c) => ({
      url: c.url,
      sha256: c.sha256,
      installPath: c.installPath,
      extract: c.extract,
    })),
    clusterName: config.name,
    apiserverCertSans: k.apiServerCertSans,
    serviceCidr: k.serviceCidr,
    measurements: measurementsFile,
    podCidr: k.podCidr,
  };
}

/** Where the CLI hears Ctrl-C; tests emit on their own emitter. */
export interface InterruptSource {
  on(event: 'SIGINT', listener: () => void): unknown;
  off(event: 'SIGINT', listener: () => void): unknown;
}

/** What the operator can do next when the node's words ask for it. */
function hintFor(message: string): string | undefined {
  if (/reboot/i.test(message)) {
    return 'hint: the node asks to be rebooted (its TPM state can only be reset by a reboot): reboot or recreate the node, then run init again';
  }
  if (/already being initialized|already initialized/i.test(message)) {
    return 'hint: the node is initializing or initialized already; if this workspace sent that init, run init again later to fetch the result';
  }
  return undefined;
}

export async function runInit(
  ctx: CommandContext,
  options: InitOptions,
  interrupts: InterruptSource = process,
): Promise<number> {
  const config = await loadConfig(ctx.workspace);
  const { verifier, measurements, document } = await configuredVerifier(ctx.workspace, config);
  const initSecret = await loadInitSecret(ctx.workspace);
  if (!initSecret) {
    throw new Error(
      `${INIT_SECRET_FILE} missing: the nodes were not created from this workspace ("sextant create" writes it)`,
    );
  }
  // One init per workspace at a time; the lock goes with the process however it ends.
  const lock = await lockWorkspace(ctx.workspace, 'init');
  try {
    const stale = await removeStaleTempFiles(ctx.workspace);
    if (stale.length > 0) {
      ctx.progress(`removed ${stale.length} temp file(s) an interrupted run left behind`);
    }
    return await initLocked(ctx, options, interrupts, {
      config,
      verifier,
      measurements,
      document,
      initSecret,
    });
  } finally {
    await lock.release();
  }
}

async function initLocked(
  ctx: CommandContext,
  options: InitOptions,
  interrupts: InterruptSource,
  setup: {
    config: SextantConfig;
    verifier: Awaited<ReturnType<typeof configuredVerifier>>['verifier'];
    measurements: Awaited<ReturnType<typeof configuredVerifier>>['measurements'];
    document: Awaited<ReturnType<typeof configuredVerifier>>['document'];
    initSecret: Buffer;
  },
): Promise<number> {
  const { config, verifier, measurements, document, initSecret } = setup;
  const pending = await loadPendingInit(ctx.workspace);
  if (pending && options.endpoint !== undefined && options.endpoint !== pending.node && !options.force) {
    ctx.stderr.write(
      `an init sent to ${pending.node} (${pending.startedAt.toISOString()}) has no result in this workspace yet; run init without --endpoint (or --endpoint ${pending.node}) to fetch it, or --force to start over elsewhere\n`,
    );
    return 1;
  }
  const resuming =
    pending !== undefined && (options.endpoint === undefined || options.endpoint === pending.node);
  const endpointText = resuming
    ? pending.node
    : (options.endpoint ?? (await firstControlPlane(ctx.workspace, config.initPort)));
  let endpoint: Endpoint;
  try {
    endpoint = parseEndpoint(endpointText, config.initPort);
  } catch (err) {
    throw new Error(`init endpoint ${endpointText}: ${(err as Error).message}`);
  }
  if (resuming) {
    ctx.progress(
      `an init sent to ${pending.node} at ${pending.startedAt.toISOString()} has no result here yet: asking the node for it`,
    );
  }

  const measurementSalt = resuming ? pending.measurementSalt : randomBytes(SALT_BYTES);
  let master: MasterSecret | undefined;
  let sent = false;
  const stopWaiting = new AbortController();
  let interruptions = 0;
  const onInterrupt = () => {
    interruptions += 1;
    if (!sent) {
      // Nothing left this process yet: stop as any command would (the exit hooks remove lock and temp files).
      ctx.stderr.write('interrupted before the init request was sent: nothing was changed on the node\n');
      process.exit(130);
    }
    if (interruptions === 1) {
      ctx.stderr.write(
        `init is running on ${endpointText}: the node finishes it whether or not this command waits. Waiting for its answer to write sextant-admin.conf; press Ctrl-C again to stop waiting (then run init again to fetch the result)\n`,
      );
      return;
    }
    stopWaiting.abort();
  };
  interrupts.on('SIGINT', onInterrupt);

  // Made once the node's attestation checked out, so a refused node leaves no new master secret behind.
  const request = async () => {
    const loaded = await loadOrCreateMasterSecret(ctx.workspace, parseKmsUri(config.kms), ctx.env);
    master = loaded.secret;
    ctx.progress(`${loaded.created ? 'created' : 'reusing'} the master secret (${loaded.source})`);
    // Recorded before anything is sent: an answer lost from here on can be fetched by the next init.
    if (!resuming) {
      await savePendingInit(ctx.workspace, { node: endpointText, measurementSalt, startedAt: new Date() });
    }
    sent = true;
    return buildInitRequest(
      config,
      { initSecret, masterKey: master.key, masterSalt: master.salt, measurementSalt },
      // with the release's version and serial: the JoinService never goes below that serial
      Buffer.from(formatMeasurementsFile(measurements, document)),
    );
  };

  ctx.progress(`attesting ${endpointText} against ${Object.keys(measurements).length} measured PCRs`);
  const timeoutMs = options.timeoutSeconds !== undefined ? options.timeoutSeconds * 1000 : undefined;
  let success: Awaited<ReturnType<typeof initCluster>>;
  try {
    success = await initCluster({
      endpoint,
      verifier,
      request,
      signal: stopWaiting.signal,
      onLog: (line) => ctx.progress(`node: ${line}`),
      onRetry: (attempt, reason) => ctx.progress(`node not reachable yet (attempt ${attempt}): ${reason}`),
      ...(timeoutMs !== undefined ? { connectTimeoutMs: timeoutMs, initTimeoutMs: timeoutMs } : {}),
    });
  } catch (err) {
    if (err instanceof InitFailedError) {
      // The node marked itself for reset: there is no result to fetch later.
      await clearPendingInit(ctx.workspace);
      ctx.stderr.write(`init failed at step "${err.step}": ${err.message}\nthe node's log:\n`);
      for (const line of err.logs) ctx.stderr.write(`  ${line}\n`);
      const hint = hintFor([err.message, ...err.logs].join('\n'));
      if (hint) ctx.stderr.write(`${hint}\n`);
      return 1;
    }
    if (err instanceof InitRefusedError) {
      // The node said no to this very request: nothing of it happened there. A record from an earlier run stays.
      if (!resuming) await clearPendingInit(ctx.workspace);
      ctx.stderr.write(`the node refused init: ${err.message}\n`);
      const hint = hintFor(err.message);
      if (hint) ctx.stderr.write(`${hint}\n`);
      return 1;
    }
    if (err instanceof InitConnectionLostError || err instanceof InitTimeoutError) {
      ctx.stderr.write(`${err.message}\n`);
      return 1;
    }
    if (err instanceof InitInterruptedError) {
      ctx.stderr.write(`${err.message}\n`);
      return 130;
    }
    if (err instanceof AttestedChannelError) {
      if (!resuming) await clearPendingInit(ctx.workspace);
      ctx.stderr.write(`nothing was sent: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    interrupts.off('SIGINT', onInterrupt);
  }

  if (!master) throw new Error('init succeeded without a request being sent');
  // The node derived the cluster ID from what we sent; a different answer means it is not the node we think.
  const clusterId = deriveClusterId(deriveMeasurementSecret(master), measurementSalt);
  const ownerId = deriveOwnerId(master);
  if (!secretsEqual(clusterId, success.clusterId) || !secretsEqual(ownerId, success.ownerId)) {
    ctx.stderr.write(
      'the node answered with a cluster ID or owner ID that does not derive from this workspace\n',
    );
    return 1;
  }
  await writeAdminConf(ctx.workspace, success.kubeconfig);
  await saveState(ctx.workspace, {
    clusterId,
    ownerId,
    endpoint: success.endpoint,
    initNode: endpointText,
    createdAt: new Date(),
  });
  await clearPendingInit(ctx.workspace);
  ctx.stdout.write(
    [
      `cluster ID: ${clusterId.toString('hex')}`,
      `owner ID: ${ownerId.toString('hex')}`,
      `API server: ${success.endpoint}`,
      `kubeconfig: ${ctx.workspace}/sextant-admin.conf`,
      `state: ${ctx.workspace}/sextant-state.yaml`,
      '',
    ].join('\n'),
  );
  return 0;
}
