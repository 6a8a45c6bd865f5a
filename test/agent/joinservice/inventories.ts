// The operator's inventories the inventory tests sign: node X listed as `role`, beside the first control plane.
import type { InventoryNode } from '../../../common/contracts/owner.js';

export const X_EK = 'aa'.repeat(32);

export const withX = (role: InventoryNode['role']): InventoryNode[] => [
  { name: 'cp-0', role: 'control-plane', eks: ['c0'.repeat(32)] },
  { name: 'x', role, eks: [X_EK] },
];
