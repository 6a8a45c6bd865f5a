// The live probes of `sextant status`: the provider's node list, each node attested as `verify` does, and the
// node list of the cluster's API server read with the workspace's admin kubeconfig.
import { readFile } from 'node:fs/promises';
import * as v from 'valibot';
import { CLUSTER_ID_PCR } from '../../common/cluster-pcr.js';
import { credentialsFromKubeconfig, KubeApi } from '../../common/kube-api.js';
import { parseWith } from '../../common/schema.js';
import type { KubernetesNode, StatusOptions, StatusProbes } from '../commands/backends.js';
import type { CommandContext } from '../commands/context.js';
import { loadConfig } from '../config/file.js';
import { ADMIN_CONF_FILE, workspacePaths } from '../workspace/paths.js';
import { type ConfiguredVerifier, configuredVerifier } from './attestation.js';
import { workspaceNodes } from './first-node.js';
import { attestEndpoint } from './verify.js';

// The part of a NodeList status reads; the API sends much more.
const nodeListSchema = v.object({
  items: v.array(
    v.object({
      metadata: v.object({ name: v.string() }),
      status: v.optional(
        v.object({
          conditions: v.optional(v.array(v.object({ type: v.string(), status: v.string() }))),
          addresses: v.optional(v.array(v.object({ type: v.string(), address: v.string() }))),
        }),
      ),
    }),
  ),
});

/** The nodes an API server lists, from its /api/v1/nodes answer. */
export function parseNodeList(body: unknown): KubernetesNode[] {
  return parseWith(nodeListSchema, body).items.map((n) => ({
    name: n.metadata.name,
    addresses: (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address),
    ready: n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
  }));
}

async function kubernetesNodes(workspace: string): Promise<KubernetesNode[]> {
  let text: string;
  try {
    text = await readFile(workspacePaths(workspace).adminConf, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${ADMIN_CONF_FILE} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  // kubectl's own request timeout: a control plane under TCG took longer than 10 s to list its nodes
  const api = new KubeApi(credentialsFromKubeconfig(text, ADMIN_CONF_FILE), { timeoutMs: 60_000 });
  try {
    return parseNodeList(await api.request<unknown>('GET', '/api/v1/nodes'));
  } finally {
    api.close();
  }
}

export async function statusProbes(ctx: CommandContext, options: StatusOptions): Promise<StatusProbes> {
  const config = await loadConfig(ctx.workspace);
  // A verifier the config cannot make (unsigned measurements, say) is every node's answer, not a crash.
  let verifier: ConfiguredVerifier | { error: string };
  try {
    verifier = await configuredVerifier(ctx.workspace, config, {
      insecure: options.insecureMeasurements === true,
      warn: (line) => ctx.stderr.write(`${line}\n`),
    });
  } catch (err) {
    verifier = { error: (err as Error).message };
  }
  return {
    nodes: () => workspaceNodes(ctx.workspace),
    attest: async (address) => {
      if ('error' in verifier) return { verified: false, reason: verifier.error };
      const endpoint = { host: address, port: config.initPort };
      const outcome = await attestEndpoint(endpoint, verifier.verifier, config.initPort);
      if (!outcome.verified) return outcome;
      const pcr15 = outcome.attestation.pcrs.get(CLUSTER_ID_PCR);
      if (!pcr15) return { verified: false, reason: `the quote holds no PCR ${CLUSTER_ID_PCR}` };
      const imageVersion = verifier.document.version;
      return { verified: true, pcr15, ...(imageVersion !== undefined ? { imageVersion } : {}) };
    },
    kubernetesNodes: () => kubernetesNodes(ctx.workspace),
  };
}
