// What `sextant status` reports: every node of the workspace with its role, address, attestation (boot chain
// against the measurements, PCR 15 = the cluster ID), image version and Kubernetes readiness, and the
// control-plane endpoint. A node that does not answer is a row saying so.
import { clusterPcrValue, isResetPcr } from '../../common/cluster-pcr.js';
import type { KubernetesNode, NodeAttestation, StatusProbes, WorkspaceNode } from '../commands/backends.js';
import type { ClusterState } from '../workspace/state.js';

export const UNKNOWN = 'unknown';

export type KubernetesReadiness = 'Ready' | 'NotReady' | 'not registered' | typeof UNKNOWN;

export interface NodeStatus {
  name: string;
  role: WorkspaceNode['role'];
  address: string;
  /** The boot chain matched the measurements and, once the cluster is initialized, PCR 15 is its cluster ID. */
  attested: boolean;
  /** What the attestation showed, or why it failed. */
  attestation: string;
  /** From the signed measurements the node matched: the agent does not report a version of its own. */
  imageVersion: string;
  kubernetes: KubernetesReadiness;
}

export interface StatusReport {
  cluster: string;
  initialized: boolean;
  /** The Kubernetes API server (host:port) init set up; null before init. */
  endpoint: string | null;
  /** Whether the API answered the node list; the reason when not. */
  kubernetesApi: { reachable: true } | { reachable: false; reason: string };
  nodes: NodeStatus[];
}

/** Attestation verdict for one node: the boot chain as verified, then PCR 15 against the cluster's ID. */
function judge(
  a: NodeAttestation,
  state: ClusterState | undefined,
): Pick<NodeStatus, 'attested' | 'attestation'> {
  if (!a.verified) return { attested: false, attestation: a.reason };
  if (!state) {
    return {
      attested: true,
      attestation: 'boot chain verified; PCR 15 not checked (the cluster is not initialized)',
    };
  }
  if (a.pcr15.equals(clusterPcrValue(state.clusterId))) {
    return { attested: true, attestation: 'boot chain verified, PCR 15 = the cluster ID' };
  }
  if (isResetPcr(a.pcr15)) {
    return {
      attested: false,
      attestation: 'boot chain verified, but PCR 15 is unset: the node has not joined the cluster',
    };
  }
  return { attested: false, attestation: "boot chain verified, but PCR 15 is another cluster's ID" };
}

function readiness(node: WorkspaceNode, listed: KubernetesNode[] | undefined): KubernetesReadiness {
  if (!listed) return UNKNOWN;
  const k =
    listed.find((n) => n.name === node.name) ?? listed.find((n) => n.addresses.includes(node.address));
  if (!k) return 'not registered';
  return k.ready ? 'Ready' : 'NotReady';
}

export interface StatusInput {
  cluster: string;
  state: ClusterState | undefined;
  probes: StatusProbes;
}

/** Asks every node and the API at once; a probe that throws is that row's answer, not the command's end. */
export async function collectStatus(input: StatusInput): Promise<StatusReport> {
  const { probes, state } = input;
  const nodes = await probes.nodes();
  const [attestations, listed] = await Promise.all([
    Promise.all(
      nodes.map((n) =>
        probes
          .attest(n.address)
          .catch((err: Error): NodeAttestation => ({ verified: false, reason: err.message })),
      ),
    ),
    state
      ? probes.kubernetesNodes().then(
          (list) => ({ list }),
          (err: Error) => ({ reason: err.message }),
        )
      : Promise.resolve({ reason: 'the cluster is not initialized (run "sextant init")' }),
  ]);
  return {
    cluster: input.cluster,
    initialized: state !== undefined,
    endpoint: state?.endpoint ?? null,
    kubernetesApi: 'list' in listed ? { reachable: true } : { reachable: false, reason: listed.reason },
    nodes: nodes.map((n, i) => {
      const a = attestations[i] as NodeAttestation;
      const verdict = judge(a, state);
      return {
        name: n.name,
        role: n.role,
        address: n.address,
        ...verdict,
        imageVersion: (verdict.attested && a.verified && a.imageVersion) || UNKNOWN,
        kubernetes: readiness(n, 'list' in listed ? listed.list : undefined),
      };
    }),
  };
}

/** Exit code: 1 when any node failed to attest. */
export function statusExitCode(report: StatusReport): number {
  return report.nodes.every((n) => n.attested) ? 0 : 1;
}

/** The report as a table for a person, with what failed spelled out beneath. */
export function statusText(r: StatusReport): string {
  const lines = [
    `cluster ${r.cluster}: ${r.endpoint ? `control-plane endpoint ${r.endpoint}` : 'not initialized (no control-plane endpoint yet)'}`,
  ];
  if (r.nodes.length === 0) {
    lines.push('no nodes in this workspace (run "sextant create")');
    return `${lines.join('\n')}\n`;
  }
  const rows = [
    ['NAME', 'ROLE', 'ADDRESS', 'ATTESTED', 'IMAGE', 'KUBERNETES'],
    ...r.nodes.map((n) => [
      n.name,
      n.role,
      n.address,
      n.attested ? 'yes' : 'no',
      n.imageVersion,
      n.kubernetes,
    ]),
  ];
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((row) => (row[c] as string).length))) ?? [];
  lines.push('');
  for (const row of rows)
    lines.push(
      row
        .map((cell, c) => cell.padEnd(widths[c] as number))
        .join('  ')
        .trimEnd(),
    );
  lines.push('');
  for (const n of r.nodes) lines.push(`${n.name}: ${n.attestation}`);
  if (!r.kubernetesApi.reachable) lines.push(`Kubernetes: ${r.kubernetesApi.reason}`);
  if (r.nodes.some((n) => n.attested && n.imageVersion === UNKNOWN)) {
    lines.push('image "unknown": the measurements are unsigned, so they name no image version');
  }
  return `${lines.join('\n')}\n`;
}
