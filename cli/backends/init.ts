// `sextant init` against a real node: secrets from the workspace, the node attested against the config, the
// request sent only over that attested channel, and the workspace written only after the node said success. The
// steps are cli/init/run-init.ts; this file wires them to the real workspace files and node.
import { formatMeasurementsFile } from '../../attestation/measurements.js';
import { removeStaleTempFiles } from '../../common/atomic-file.js';
import { formatEndpoint } from '../../common/net.js';
import type { InitRequest } from '../../gen/proto/init.js';
import type { InitOptions } from '../commands/backends.js';
import type { CommandContext } from '../commands/context.js';
import { loadConfig } from '../config/file.js';
import type { SextantConfig } from '../config/schema.js';
import { initCluster } from '../init/init-cluster.js';
import { type InterruptSource, runInitSteps } from '../init/run-init.js';
import { prepareMasterSecret } from '../kms/master-secret.js';
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
    const stale = [...lock.swept, ...(await removeStaleTempFiles(ctx.workspace))];
    if (stale.length > 0) {
      ctx.progress(`removed ${stale.length} temp file(s) an interrupted run left behind`);
    }
    const dir = ctx.workspace;
    // The KMS is asked before the node is: one that says no (or is down) costs the cluster nothing.
    const master = await prepareMasterSecret(dir, parseKmsUri(config.kms), ctx.env);
    const timeoutMs = options.timeoutSeconds !== undefined ? options.timeoutSeconds * 1000 : undefined;
    return await runInitSteps({
      workspace: dir,
      files: {
        loadPending: () => loadPendingInit(dir),
        savePending: (pending) => savePendingInit(dir, pending),
        clearPending: () => clearPendingInit(dir),
        masterSecret: () => master.keep(),
        writeAdminConf: (kubeconfig) => writeAdminConf(dir, kubeconfig),
        saveState: (state) => saveState(dir, state),
      },
      node: (endpoint, callbacks) => {
        ctx.progress(
          `attesting ${formatEndpoint(endpoint)} against ${Object.keys(measurements).length} measured PCRs`,
        );
        return initCluster({
          endpoint,
          verifier,
          ...callbacks,
          ...(timeoutMs !== undefined ? { connectTimeoutMs: timeoutMs, initTimeoutMs: timeoutMs } : {}),
        });
      },
      buildRequest: ({ master, measurementSalt }) =>
        buildInitRequest(
          config,
          { initSecret, masterKey: master.key, masterSalt: master.salt, measurementSalt },
          // with the release's version and serial: the JoinService never goes below that serial
          Buffer.from(formatMeasurementsFile(measurements, document)),
        ),
      defaultEndpoint: () => firstControlPlane(dir, config.initPort),
      initPort: config.initPort,
      ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
      force: options.force,
      interrupts,
      progress: (m) => ctx.progress(m),
      stdout: ctx.stdout,
      stderr: ctx.stderr,
    });
  } finally {
    await lock.release();
  }
}
