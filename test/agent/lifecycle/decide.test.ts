import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type BootAction,
  decideBoot,
  decideJoinEnd,
  type JoinEnd,
  JoinStopped,
} from '../../../agent/lifecycle/decide.js';
import type { NodeState } from '../../../agent/state/node-state.js';
import { nodeStateIn as state } from '../fakes.js';

describe('decideBoot', () => {
  const cases: { name: string; state: NodeState | null; pcr15IsZero: boolean; want: BootAction }[] = [
    { name: 'no state, PCR 15 zero: fresh', state: null, pcr15IsZero: true, want: { kind: 'fresh' } },
    {
      name: 'no state, PCR 15 extended: reboot required (someone took the lock this boot and left nothing)',
      state: null,
      pcr15IsZero: false,
      want: { kind: 'reboot-required', reason: 'PCR 15 is already extended but this node holds no state' },
    },
    {
      name: 'bootstrapped after a reboot: rejoin',
      state: state('bootstrapped'),
      pcr15IsZero: true,
      want: { kind: 'rejoin', state: state('bootstrapped') },
    },
    {
      name: 'bootstrapped after an agent restart in the same boot: rejoin',
      state: state('bootstrapped'),
      pcr15IsZero: false,
      want: { kind: 'rejoin', state: state('bootstrapped') },
    },
    {
      name: 'interrupted init, PCR 15 zero: reset',
      state: state('initializing'),
      pcr15IsZero: true,
      want: { kind: 'reset', reason: 'a init was interrupted' },
    },
    {
      name: 'interrupted join, PCR 15 zero: reset',
      state: state('joining'),
      pcr15IsZero: true,
      want: { kind: 'reset', reason: 'a join was interrupted' },
    },
    {
      name: 'interrupted join in the same boot: reboot required',
      state: state('joining'),
      pcr15IsZero: false,
      want: { kind: 'reboot-required', reason: 'a join was interrupted' },
    },
    {
      name: 'failed bootstrap names its step: reset',
      state: state('reset-required', 'kubeadm-join'),
      pcr15IsZero: true,
      want: { kind: 'reset', reason: 'the last bootstrap failed at kubeadm-join' },
    },
    {
      name: 'failed bootstrap without a step',
      state: state('reset-required'),
      pcr15IsZero: true,
      want: { kind: 'reset', reason: 'the last bootstrap failed at an unknown step' },
    },
    {
      name: 'failed bootstrap in the same boot: reboot required',
      state: state('reset-required', 'kubeadm-init'),
      pcr15IsZero: false,
      want: { kind: 'reboot-required', reason: 'the last bootstrap failed at kubeadm-init' },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(decideBoot(c.state, c.pcr15IsZero), c.want);
    });
  }
});

describe('decideJoinEnd', () => {
  const cases: { name: string; err: unknown; want: JoinEnd }[] = [
    {
      name: 'the init server won the race: the join client steps back',
      err: new JoinStopped('this node is being initialized; join client stops', 'lost-race'),
      want: { kind: 'stopped', message: 'this node is being initialized; join client stops' },
    },
    {
      name: 'stopped with the agent',
      err: new JoinStopped('join client stopped', 'aborted'),
      want: { kind: 'stopped', message: 'join client stopped' },
    },
    {
      name: 'failed after the node lock: only a reboot lets it join again',
      err: new JoinStopped('join failed at kubeadm-join: exit 1', 'reset-required'),
      want: {
        kind: 'reboot-required',
        reason: 'join failed at kubeadm-join: exit 1; reboot the node to join again',
      },
    },
    {
      name: 'anything else is a failure to report, not a reboot',
      err: new Error('disk on fire'),
      want: { kind: 'failed', message: 'join client stopped: disk on fire' },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(decideJoinEnd(c.err), c.want);
    });
  }
});
