import type { NodeState } from '../state/node-state.js';

/**
 * What this boot of the agent does, decided from the persisted node state and PCR 15 alone:
 * - `fresh`: never bootstrapped: serve init and run the join client side by side;
 * - `rejoin`: bootstrapped before: get the rejoin ticket (or, on the first control plane, its own secrets);
 * - `reset`: an interrupted or failed bootstrap left state that must not be reused: clean up, then start fresh;
 * - `reboot-required`: PCR 15 is already extended in this boot, so this boot can never become a clean node.
 */
export type BootAction =
  | { kind: 'fresh' }
  | { kind: 'rejoin'; state: NodeState }
  | { kind: 'reset'; reason: string }
  | { kind: 'reboot-required'; reason: string };

export function decideBoot(state: NodeState | null, pcr15IsZero: boolean): BootAction {
  if (state?.phase === 'bootstrapped') return { kind: 'rejoin', state };
  if (state) {
    const reason =
      state.phase === 'reset-required'
        ? `the last bootstrap failed at ${state.failedStep ?? 'an unknown step'}`
        : `a ${state.phase === 'initializing' ? 'init' : 'join'} was interrupted`;
    return pcr15IsZero ? { kind: 'reset', reason } : { kind: 'reboot-required', reason };
  }
  if (!pcr15IsZero) {
    return { kind: 'reboot-required', reason: 'PCR 15 is already extended but this node holds no state' };
  }
  return { kind: 'fresh' };
}

/** Why a join client ended without joining; `reset-required` means PCR 15 was taken, so only a reboot helps. */
export class JoinStopped extends Error {
  constructor(
    message: string,
    readonly reason: 'lost-race' | 'reset-required' | 'aborted',
  ) {
    super(message);
    this.name = 'JoinStopped';
  }
}

/** What the agent does when its background join client ends with `err`. */
export type JoinEnd =
  | { kind: 'stopped'; message: string }
  | { kind: 'reboot-required'; reason: string }
  | { kind: 'failed'; message: string };

export function decideJoinEnd(err: unknown): JoinEnd {
  if (!(err instanceof JoinStopped)) {
    return { kind: 'failed', message: `join client stopped: ${(err as Error).message}` };
  }
  if (err.reason === 'reset-required') {
    return { kind: 'reboot-required', reason: `${err.message}; reboot the node to join again` };
  }
  return { kind: 'stopped', message: err.message };
}
