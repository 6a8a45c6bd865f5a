// What the provider tells a node about itself (the QEMU stand-in for a cloud's metadata service): the CLI's
// provider writes it, the agent reads it. Served by QEMU as the fw_cfg item below.
import * as v from 'valibot';
import { isDnsLabel, isIp } from '../net.js';
import { checkedString, matching, strictObject } from '../schema.js';
import { nodeRoleSchema } from './node-role.js';

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
  },
  'a JSON object',
);

export type InstanceMetadata = v.InferOutput<typeof instanceMetadataSchema>;
