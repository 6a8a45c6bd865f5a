// `sextant init` against a real node: secrets from the workspace, the node attested against the config, the
// request sent only over that attested channel, and the workspace written only after the node said success.
import { randomBytes } from 'node:crypto';
import { AttestedChannelError } from '../../attestation/atls/index.js';
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
import { InitFailedError, InitRefusedError, initCluster } from '../init/init-cluster.js';
import { loadInitSecret } from '../workspace/init-secret.js';
import { loadOrCreateMasterSecret } from '../workspace/master-secret.js';
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

export async function runInit(ctx: CommandContext, options: InitOptions): Promise<number> {
  const config = await loadConfig(ctx.workspace);
  const { verifier, measurements } = await configuredVerifier(ctx.workspace, config);
  const initSecret = await loadInitSecret(ctx.workspace);
  if (!initSecret) {
    throw new Error(
      `${INIT_SECRET_FILE} missing: the nodes were not created from this workspace ("sextant create" writes it)`,
    );
  }
  const endpointText = options.endpoint ?? (await firstControlPlane(ctx.workspace, config.initPort));
  let endpoint: Endpoint;
  try {
    endpoint = parseEndpoint(endpointText, config.initPort);
  } catch (err) {
    throw new Error(`init endpoint ${endpointText}: ${(err as Error).message}`);
  }

  const measurementSalt = randomBytes(SALT_BYTES);
  let master: MasterSecret | undefined;
  // Made once the node's attestation checked out, so a refused node leaves no new master secret behind.
  const request = async () => {
    const loaded = await loadOrCreateMasterSecret(ctx.workspace);
    master = loaded.secret;
    ctx.progress(
      `${loaded.created ? 'created' : 'reusing'} the master secret (sextant-mastersecret.json, 0600)`,
    );
    return buildInitRequest(
      config,
      { initSecret, masterKey: master.key, masterSalt: master.salt, measurementSalt },
      Buffer.from(JSON.stringify({ measurements })),
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
      onLog: (line) => ctx.progress(`node: ${line}`),
      onRetry: (attempt, reason) => ctx.progress(`node not reachable yet (attempt ${attempt}): ${reason}`),
      ...(timeoutMs !== undefined ? { connectTimeoutMs: timeoutMs, initTimeoutMs: timeoutMs } : {}),
    });
  } catch (err) {
    if (err instanceof InitFailedError) {
      ctx.stderr.write(`init failed at step "${err.step}": ${err.message}\nthe node's log:\n`);
      for (const line of err.logs) ctx.stderr.write(`  ${line}\n`);
      return 1;
    }
    if (err instanceof InitRefusedError) {
      ctx.stderr.write(`the node refused init: ${err.message}\n`);
      return 1;
    }
    if (err instanceof AttestedChannelError) {
      ctx.stderr.write(`nothing was sent: ${err.message}\n`);
      return 1;
    }
    throw err;
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
