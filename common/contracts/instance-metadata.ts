// What the provider tells a node about itself (the QEMU stand-in for a cloud's metadata service): the CLI's
// provider writes it, the agent reads it. Served by QEMU as the fw_cfg item below.
import * as v from 'valibot';
import { isDnsLabel, isIp } from '../net.js';
import { checkedString, matching, strictObject } from '../schema.js';
import { kubeadmTuningSchema } from './kubeadm-tuning.js';
import { nodeRoleSchema } from './node-role.js';
import { inventorySchema } from './owner.js';

/** The fw_cfg item names the provider sets and the node image reads. */
export const FW_CFG = {
  metadata: 'opt/sextant/metadata',
  network: 'opt/sextant/network',
  ekCa: 'opt/sextant/ek-ca',
} as const;

/** Where the agent finds the metadata item on a QEMU node. */
export const METADATA_URL = `file:///sys/firmware/qemu_fw_cfg/by_name/${FW_CFG.metadata}/raw`;

const endpointList = v.optional(
  v.array(
    v.pipe(v.string('expected a string'), v.nonEmpty('expected a non-empty string')),
    'expected a list of strings',
  ),
  [],
);

export const instanceMetadataSchema = strictObject(
  {
    name: checkedString('a DNS label', isDnsLabel),
    role: nodeRoleSchema,
    /** SHA-256 (hex) of the init secret the operator's CLI holds. */
    initSecretHash: matching(/^[0-9a-f]{64}$/, '64 lowercase hex characters'),
    advertiseAddress: checkedString('an IP address', isIp),
    peers: endpointList,
    /** JoinService endpoints, "host:port"; parsed by the join client's metadata source. */
    joinEndpoints: endpointList,
    /**
     * The operator's commitment (common/contracts/owner.ts): base64 Ed25519 SPKI of the owner key derived from the
     * init secret. A fresh node joins only a JoinService that proves possession of it; without it, none.
     */
    owner: v.optional(matching(/^[A-Za-z0-9+/]+={0,2}$/, 'base64 of an Ed25519 SubjectPublicKeyInfo')),
    /** The nodes the operator created (name, role, EK), signed with the owner key: what a JoinService admits by. */
    inventory: v.optional(inventorySchema),
    /** What the node runs on, as kubeadm should be tuned for it (agent/kubeadm/tuning.ts); absent, kubeadm's defaults. */
    kubeadmTuning: v.optional(kubeadmTuningSchema),
  },
  'a JSON object',
);

export type InstanceMetadata = v.InferOutput<typeof instanceMetadataSchema>;
