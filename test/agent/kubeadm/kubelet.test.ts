import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createKubelet, KubeletStartError } from '../../../agent/kubeadm/kubelet.js';
import { tempDir } from '../../harness/temp-dir.js';

describe('createKubelet', () => {
  it('runs the start command, with its arguments, before it resolves', async () => {
    const marker = join(tempDir('sextant-kubelet-'), 'started');
    await createKubelet({ command: ['sh', '-c', 'echo "$1" > "$2"', 'sh', 'kubelet', marker] }).start();
    assert.equal(await readFile(marker, 'utf8'), 'kubelet\n');
  });

  it('starts nothing for an empty command (kubeadm starts kubelet itself there)', async () => {
    // With a 1 ms limit any spawned program would time out and reject; resolving shows none was started.
    await assert.doesNotReject(createKubelet({ command: [], timeoutMs: 1 }).start());
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
