import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resetStaleBootstrap } from '../../../agent/lifecycle/reset.js';
import { recordingLog } from '../../harness/recording-log.js';
import { FakeKubeadm, FakeStateStore, nodeStateIn } from '../fakes.js';

describe('resetStaleBootstrap', () => {
  const cases: {
    name: string;
    kubeadmFails?: Error;
    clearFails?: Error;
    cleared: boolean;
    error?: RegExp;
    warns: RegExp[];
  }[] = [
    { name: 'runs kubeadm reset and removes the state', cleared: true, warns: [] },
    {
      name: 'removes the state even when kubeadm reset fails (nothing of Kubernetes to undo)',
      kubeadmFails: new Error('spawn /usr/local/bin/kubeadm ENOENT'),
      cleared: true,
      warns: [/warn kubeadm reset: spawn .*ENOENT/],
    },
    {
      name: 'stops when the state cannot be removed',
      clearFails: new Error('EROFS: read-only file system'),
      cleared: false,
      error: /EROFS/,
      warns: [],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const log = recordingLog();
      const kubeadm = new FakeKubeadm();
      if (c.kubeadmFails) kubeadm.fail.reset = c.kubeadmFails;
      const state = new FakeStateStore();
      state.current = nodeStateIn('reset-required', 'kubeadm-join');
      if (c.clearFails) {
        const err = c.clearFails;
        state.clear = async () => {
          throw err;
        };
      }
      const run = resetStaleBootstrap({
        log,
        kubeadm,
        state,
        stateDir: join(tmpdir(), 'sextant-no-such-state-dir'),
      });
      if (c.error) await assert.rejects(run, c.error);
      else await run;
      assert.deepEqual(kubeadm.calls, ['reset']);
      assert.equal(state.current === null, c.cleared);
      for (const w of c.warns)
        assert.ok(
          log.lines.some((l) => w.test(l)),
          `${w}: ${log.lines.join('\n')}`,
        );
      assert.equal(
        log.lines.some((l) => /initializable again/.test(l)),
        c.cleared,
      );
    });
  }
});
