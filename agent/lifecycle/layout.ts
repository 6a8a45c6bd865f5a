// Every file a cluster writes under the agent's state directory, in one table: the writers take their names from
// here and the reset removes what the table marks `cluster`, so a file added without a reset rule fails to compile.
import { join } from 'node:path';

/**
 * What a reset (a bootstrap that was interrupted or failed) does with each file:
 * - `cluster`: removed, so nothing of a cluster that never came to be survives into the next one;
 * - `node`: the node state, removed last by its store (a reset that stops midway finds it and runs again);
 * - `kept`: survives the reset (the disk ID a JoinService binds this node's admission to).
 */
export type ResetRule = 'cluster' | 'node' | 'kept';

export const STATE_FILES = {
  /** The node's phase record (lifecycle/phases.ts). */
  nodeState: { name: 'node-state.json', reset: 'node' },
  /** The state disk's ID, drawn before the first join ticket is asked for. */
  diskId: { name: 'disk-id', reset: 'kept' },
  /** A control plane's master secret, salts, measurements and components. */
  clusterSecrets: { name: 'cluster-secrets.json', reset: 'cluster' },
  /** The measurements the JoinService admits nodes against... */
  measurements: { name: 'measurements.json', reset: 'cluster' },
  /** ...and their MAC under the cluster's key, without which a replaced file counts for nothing. */
  measurementsMac: { name: 'measurements.json.mac', reset: 'cluster' },
  /** ...and the highest measurements serial the JoinService has taken, which it never goes below. */
  measurementsFloor: { name: 'measurements-floor.json', reset: 'cluster' },
  /** The operator inventory the JoinService took last (signed), which it admits by after a restart... */
  inventory: { name: 'inventory.json', reset: 'cluster' },
  /** ...and the highest inventory serial it has taken, which it never goes below. */
  inventoryFloor: { name: 'inventory-floor.json', reset: 'cluster' },
  /** The init answer sealed to its owner. */
  initReply: { name: 'init-reply.json', reset: 'cluster' },
  /** The JoinService's directory: admissions and the signed audit log with its key. */
  joinService: { name: 'joinservice', reset: 'cluster' },
} as const satisfies Record<string, { name: string; reset: ResetRule }>;

export type StateFile = keyof typeof STATE_FILES;

/** Where `file` lives in `stateDir`. */
export function statePath(stateDir: string, file: StateFile): string {
  return join(stateDir, STATE_FILES[file].name);
}

/** The names a reset removes, in table order. */
export const CLUSTER_FILES: readonly string[] = Object.values(STATE_FILES)
  .filter((f) => f.reset === 'cluster')
  .map((f) => f.name);
