// The workspace lock's sweep: files of lock attempts whose process is gone (killed between creating its attempt
// file and linking it as the lock) are removed by the next holder; a live process's, or another host's, stay.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LOCK_FILE, lockWorkspace } from '../../../cli/workspace/lock.js';
import { tempDir } from '../../harness/temp-dir.js';

/** A pid that ran and exited, so nothing of it is alive. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

const holder = (pid: number, host = hostname()) =>
  `${JSON.stringify({ pid, host, command: 'init', since: '2026-01-01T00:00:00Z', token: 'ab'.repeat(8) })}\n`;

describe('cli/workspace/lock: sweep of attempt files', () => {
  const root = tempDir('sextant-lock-');

  const dead = deadPid();
  const cases: { name: string; file: string; content: string; swept: boolean }[] = [
    {
      name: 'a dead process, killed before writing',
      file: `${dead}-${'1'.repeat(16)}`,
      content: '',
      swept: true,
    },
    {
      name: 'a dead process, written',
      file: `${dead}-${'2'.repeat(16)}`,
      content: holder(dead),
      swept: true,
    },
    { name: 'a dead process taking over', file: `stale-${dead}-${'3'.repeat(16)}`, content: '', swept: true },
    { name: 'an older name, a dead holder', file: '4'.repeat(16), content: holder(dead), swept: true },
    { name: 'an older name, torn', file: '5'.repeat(16), content: '{"pid":', swept: true },
    {
      name: 'a live process (about to link)',
      file: `${process.pid}-${'6'.repeat(16)}`,
      content: '',
      swept: false,
    },
    {
      name: 'an older name, a live holder',
      file: '7'.repeat(16),
      content: holder(process.pid),
      swept: false,
    },
    {
      name: 'another host',
      file: `${dead}-${'8'.repeat(16)}`,
      content: holder(dead, 'elsewhere'),
      swept: false,
    },
    { name: 'not an attempt file', file: 'backup', content: '', swept: false },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.swept ? 'removed' : 'kept'}`, async () => {
      const dir = await mkdtemp(join(root, 'ws-'));
      const name = `${LOCK_FILE}.${c.file}`;
      await writeFile(join(dir, name), c.content);
      const lock = await lockWorkspace(dir, 'init');
      assert.deepEqual(lock.swept, c.swept ? [name] : []);
      await lock.release();
      assert.deepEqual(await readdir(dir), c.swept ? [] : [name]);
    });
  }
});
