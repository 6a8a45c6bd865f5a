import { rm } from 'node:fs/promises';
import * as v from 'valibot';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { NODE_ROLES } from '../../common/contracts/node-role.js';
import { readTextIfExists } from '../../common/read-if-exists.js';
import { matching, parseWith, strictObject } from '../../common/schema.js';
import { statePath } from '../lifecycle/layout.js';
import { ORIGINS, PHASES, STEPS } from '../lifecycle/phases.js';

const HEX64 = /^[0-9a-f]{64}$/;

const nodeStateSchema = strictObject(
  {
    version: v.literal(1, 'expected 1'),
    /** How far this node got (lifecycle/phases.ts). */
    phase: v.picklist(PHASES, `expected one of ${PHASES.join(', ')}`),
    role: v.picklist(NODE_ROLES, 'expected control-plane or worker'),
    origin: v.picklist(ORIGINS, `expected one of ${ORIGINS.join(', ')}`),
    clusterId: matching(HEX64, '64 hex characters'),
    measurementSalt: matching(HEX64, '64 hex characters'),
    diskUuid: v.string('expected a UUID string'),
    failedStep: v.optional(v.picklist(STEPS, `expected one of ${STEPS.join(', ')}`)),
    updatedAt: v.string('expected an ISO timestamp'),
  },
  'a JSON object',
);

export type NodeState = v.InferOutput<typeof nodeStateSchema>;
export type NodePhase = NodeState['phase'];

export class NodeStateError extends Error {
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'NodeStateError';
  }
}

function validate(path: string, raw: unknown): NodeState {
  try {
    return parseWith(nodeStateSchema, raw);
  } catch (err) {
    throw new NodeStateError(path, (err as Error).message);
  }
}

/** The node's persistent record, written atomically with mode 0600. */
export class NodeStateStore {
  readonly path: string;

  /** `now` stamps `updatedAt`; tests pass a fixed clock. */
  constructor(
    stateDir: string,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.path = statePath(stateDir, 'nodeState');
  }

  async load(): Promise<NodeState | null> {
    const text = await readTextIfExists(this.path);
    if (text === undefined) return null;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new NodeStateError(this.path, `invalid JSON: ${(err as Error).message}`);
    }
    return validate(this.path, raw);
  }

  async save(state: Omit<NodeState, 'version' | 'updatedAt'>): Promise<NodeState> {
    const full: NodeState = { version: 1, ...state, updatedAt: this.now().toISOString() };
    validate(this.path, full);
    await writeFileAtomic(this.path, `${JSON.stringify(full, null, 2)}\n`, { mode: 0o600 });
    return full;
  }

  async clear(): Promise<void> {
    await rm(this.path, { force: true });
  }
}
