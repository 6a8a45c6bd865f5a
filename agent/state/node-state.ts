import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file.js';

/**
 * How far this node got. `bootstrapped` is the only phase a later boot may build on; an interrupted
 * `initializing`/`joining` becomes `reset-required`, so half-made state is never reused.
 */
export type NodePhase = 'initializing' | 'joining' | 'bootstrapped' | 'reset-required';

export interface NodeState {
  version: 1;
  phase: NodePhase;
  role: 'control-plane' | 'worker';
  /** Whether this node ran `kubeadm init` (the first control plane) or joined. */
  origin: 'init' | 'join';
  clusterId: string;
  measurementSalt: string;
  diskUuid: string;
  failedStep?: string;
  updatedAt: string;
}

const FILE = 'node-state.json';

export class NodeStateError extends Error {
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'NodeStateError';
  }
}

function validate(path: string, raw: unknown): NodeState {
  if (!raw || typeof raw !== 'object') throw new NodeStateError(path, 'expected a JSON object');
  const s = raw as Record<string, unknown>;
  const fail = (key: string, expected: string): never => {
    throw new NodeStateError(
      path,
      `${key}: expected ${expected}, got ${JSON.stringify(s[key])?.slice(0, 80)}`,
    );
  };
  if (s.version !== 1) fail('version', '1');
  if (!['initializing', 'joining', 'bootstrapped', 'reset-required'].includes(s.phase as string)) {
    fail('phase', 'initializing, joining, bootstrapped or reset-required');
  }
  if (s.role !== 'control-plane' && s.role !== 'worker') fail('role', 'control-plane or worker');
  if (s.origin !== 'init' && s.origin !== 'join') fail('origin', 'init or join');
  if (typeof s.clusterId !== 'string' || !/^[0-9a-f]{64}$/.test(s.clusterId))
    fail('clusterId', '64 hex characters');
  if (typeof s.measurementSalt !== 'string' || !/^[0-9a-f]{64}$/.test(s.measurementSalt)) {
    fail('measurementSalt', '64 hex characters');
  }
  if (typeof s.diskUuid !== 'string') fail('diskUuid', 'a UUID string');
  if (typeof s.updatedAt !== 'string') fail('updatedAt', 'an ISO timestamp');
  return s as unknown as NodeState;
}

/** The node's persistent record, written atomically with mode 0600. */
export class NodeStateStore {
  readonly path: string;

  /** `now` stamps `updatedAt`; tests pass a fixed clock. */
  constructor(
    stateDir: string,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.path = join(stateDir, FILE);
  }

  async load(): Promise<NodeState | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
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
