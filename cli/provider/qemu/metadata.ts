// What the QEMU provider tells each node about itself (the fw_cfg metadata item), from the nodes it made.
import {
  type InstanceMetadata,
  instanceMetadataSchema,
} from '../../../common/contracts/instance-metadata.js';
import type { KubeadmTuning } from '../../../common/contracts/kubeadm-tuning.js';
import type { NodeRole } from '../../../common/contracts/node-role.js';
import { formatEndpoint } from '../../../common/net.js';
import { parseWith } from '../../../common/schema.js';

/** Every node here runs under TCG (vm.ts: no KVM on these machines): kubeadm needs the emulator's long waits. */
export const QEMU_KUBEADM_TUNING: KubeadmTuning = 'qemu-tcg';

export interface MetadataInput {
  initSecretHash: string;
  /** The JoinService port on every control plane. */
  joinServicePort: number;
  /** The operator commitment and the signed inventory, when the operator's key is known. */
  owner?: Pick<InstanceMetadata, 'owner' | 'inventory'>;
}

/** The metadata of `node`, one of `nodes`; checked against the agent's own schema, so no node boots with metadata it would refuse. */
export function nodeMetadata(
  node: { name: string; role: NodeRole; address: string },
  nodes: readonly { role: NodeRole; address: string }[],
  input: MetadataInput,
): InstanceMetadata {
  const others = nodes.filter((p) => p !== node);
  return parseWith(instanceMetadataSchema, {
    name: node.name,
    role: node.role,
    initSecretHash: input.initSecretHash,
    advertiseAddress: node.address,
    peers: others.map((p) => p.address),
    joinEndpoints: others
      .filter((p) => p.role === 'control-plane')
      .map((p) => formatEndpoint({ host: p.address, port: input.joinServicePort })),
    kubeadmTuning: QEMU_KUBEADM_TUNING,
    ...input.owner,
  });
}
