import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createKubelet, KubeletStartError } from '../../../agent/kubeadm/kubelet.js';

describe('createKubelet', () => {
  it('runs the start command', async () => {
    await createKubelet({ command: ['true'] }).start();
  });

  it('does nothing for an empty command (kubeadm starts kubelet itself there)', async () => {
    await createKubelet({ command: [] }).start();
  });

  const failures: { name: string; command: string[]; timeoutMs?: number; says: RegExp }[] = [
    {
      name: 'a failing command',
      command: ['sh', '-c', 'echo unit kubelet.service not found >&2; exit 5'],
      says: /exit 5: unit kubelet.service not found/,
    },
    { name: 'a missing program', command: ['/nonexistent/systemctl', 'start', 'kubelet'], says: /ENOENT/ },
    { name: 'a command that hangs', command: ['sleep', '10'], timeoutMs: 100, says: /timed out/ },
  ];
  for (const f of failures) {
    it(`says which command failed and why: ${f.name}`, async () => {
      await assert.rejects(
        createKubelet({ command: f.command, ...(f.timeoutMs ? { timeoutMs: f.timeoutMs } : {}) }).start(),
        (err: Error) => {
          assert.ok(err instanceof KubeletStartError);
          assert.ok(err.message.startsWith(`starting kubelet (${f.command.join(' ')}): `), err.message);
          assert.match(err.message, f.says);
          return true;
        },
      );
    });
  }
});
