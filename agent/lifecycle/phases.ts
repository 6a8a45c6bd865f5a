// The node's phases and the steps of a bootstrap, as types the node-state schema is built from: a step that is not
// listed here neither compiles as a step nor loads from a state file.

/**
 * How far this node got. `bootstrapped` is the only phase a later boot may build on; an interrupted
 * `initializing`/`joining` is reset, and `reset-required` names the step that failed.
 */
export const PHASES = ['initializing', 'joining', 'bootstrapped', 'reset-required'] as const;
export type Phase = (typeof PHASES)[number];

/** Whether this node ran `kubeadm init` (the first control plane) or joined. */
export const ORIGINS = ['init', 'join'] as const;
export type Origin = (typeof ORIGINS)[number];

/** The phase a bootstrap of each origin records while it runs. */
export const RUNNING_PHASE = { init: 'initializing', join: 'joining' } as const satisfies Record<
  Origin,
  Phase
>;

/** Every step a bootstrap runs after the node lock; `failedStep` is one of them. */
export const STEPS = [
  'persist-state',
  'install-components',
  'write-files',
  'kubeadm-init',
  'kubeadm-join',
  'kubeconfig',
  'join-service',
  'persist-reply',
  /** keyslot 0 takes the cluster's key for the state disk's UUID, the disk token says initialized */
  'disk-commit',
] as const;
export type Step = (typeof STEPS)[number];
