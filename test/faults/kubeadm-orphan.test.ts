// An agent killed while kubeadm runs must not leave kubeadm running (writing /etc/kubernetes while the
// restarted agent resets the node). The "kubeadm" here behaves like the real one waiting for the control plane:
// it writes nothing, so no broken pipe would end it; only the parent-death signal the driver sets does.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { tempDir } from '../harness/temp-dir.js';

const REPO = resolve(import.meta.dirname, '../..');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('kubeadm dies with the agent', { timeout: 60_000 }, () => {
  const dir = tempDir('sextant-orphan-');
  let kubeadmPid = 0;
  after(() => {
    if (kubeadmPid && alive(kubeadmPid)) process.kill(kubeadmPid, 'SIGKILL');
  });

  it('the agent SIGKILLed mid-init: its kubeadm is gone too', async () => {
    const pidFile = join(dir, 'kubeadm.pid');
    const fake = join(dir, 'kubeadm');
    await writeFile(fake, `#!/bin/sh\necho $$ > ${pidFile}\nexec sleep 600\n`);
    await chmod(fake, 0o755);
    const agent = spawn(
      process.execPath,
      ['--import', 'tsx', join(REPO, 'test/faults/tools/run-kubeadm.ts'), fake],
      {
        cwd: REPO,
        stdio: 'ignore',
      },
    );
    // The shell creates the file before it writes the pid: wait for the line, not the file.
    const pidOf = async () => (existsSync(pidFile) ? Number((await readFile(pidFile, 'utf8')).trim()) : 0);
    for (let i = 0; i < 1000 && !(await pidOf()); i++) await new Promise((r) => setTimeout(r, 50));
    kubeadmPid = await pidOf();
    assert.ok(alive(kubeadmPid), 'kubeadm runs');
    agent.kill('SIGKILL');
    await new Promise((r) => agent.once('exit', r));
    for (let i = 0; i < 40 && alive(kubeadmPid); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(!alive(kubeadmPid), `kubeadm (pid ${kubeadmPid}) outlived the agent`);
  });
});
