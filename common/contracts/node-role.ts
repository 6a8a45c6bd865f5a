import * as v from 'valibot';

/** What a node is in its cluster; the provider decides it and the node learns it from its metadata. */
export const NODE_ROLES = ['control-plane', 'worker'] as const;

export type NodeRole = (typeof NODE_ROLES)[number];

export const nodeRoleSchema = v.picklist(NODE_ROLES, `expected one of ${NODE_ROLES.join(', ')}`);
