// Test harness: an operator workspace for nodes started by the harness (swtpm EK CA, swtpm measurements, the
// kubeadm stand-in as the one component), and the CLI run against it from inside a test network.
import { join, resolve } from 'node:path';
import type { Measurements } from '../../attestation/measurements.js';
import { saveConfig } from '../../cli/config/file.js';
import type { SextantConfig } from '../../cli/config/schema.js';
import { loadOrCreateInitSecret } from '../../cli/workspace/init-secret.js';
import { kubeadmStandin, swtpmMeasurements } from './cluster-kit.js';
import type { ExecResult, NodeNamespace } from './netns.js';
import { writeSignedWorkspace } from './signed-workspace.js';
import type { SwtpmCa } from './swtpm.js';

const REPO = resolve(import.meta.dirname, '../..');

export interface LocalWorkspace {
  dir: string;
  config: SextantConfig;
  initSecret: Buffer;
}

/**
 * Writes sextant-conf.yaml (+ EK CA, measurements signed by a release key made here and pinned in the config, as
 * `config generate` pins an image's) and the init secret the nodes' metadata must carry.
 */
export async function writeLocalWorkspace(
  dir: string,
  options: { ca: SwtpmCa; name?: string; workers?: number; measurements?: Measurements },
): Promise<LocalWorkspace> {
  // a release's document: the image version and its serial, pinned with the key's fingerprint
  const { config } = await writeSignedWorkspace(dir, {
    measurements: options.measurements ?? swtpmMeasurements(),
    doc: { version: 'harness', serial: 1 },
    ekCa: { 'ek-ca-root.pem': options.ca.rootPem, 'ek-ca-issuer.pem': options.ca.issuerPem },
  });
  const standin = kubeadmStandin();
  config.name = options.name ?? 'local';
  config.nodes = { controlPlanes: 1, workers: options.workers ?? 0 };
  config.kubernetes.components = [
    { url: standin.url, sha256: standin.sha256, installPath: '/usr/local/bin/kubeadm', extract: false },
  ];
  await saveConfig(dir, config);
  const { secret } = await loadOrCreateInitSecret(dir);
  return { dir, config, initSecret: secret };
}

/** `sextant <args> --workspace dir`, run where the nodes are reachable (a namespace of the test network). */
export function runCli(
  where: NodeNamespace,
  dir: string,
  args: string[],
  timeoutMs = 300_000,
): Promise<ExecResult> {
  return where.exec(
    process.execPath,
    ['--import', 'tsx', join(REPO, 'cli/main.ts'), ...args, '--workspace', dir],
    {
      cwd: REPO,
      timeoutMs,
    },
  );
}
