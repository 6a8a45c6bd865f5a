// @tier system: swtpm
// The workspace's private swtpm-localca CA: its two private keys (root and signing key) are secrets like every other
// file the CLI keeps, so 0600 whether the CA was made by ensureLocalCa or by swtpm_setup on first use.
import assert from 'node:assert/strict';
import { chmod, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ensureLocalCa, manufactureTpm } from '../../../../cli/provider/qemu/swtpm.js';
import { tempDir } from '../../../harness/temp-dir.js';

async function keyModes(caDir: string): Promise<Record<string, string>> {
  const stateDir = join(caDir, 'localca');
  const out: Record<string, string> = {};
  for (const name of await readdir(stateDir)) {
    if (!name.endsWith('.pem') || name.includes('cert')) continue;
    out[name] = ((await stat(join(stateDir, name))).mode & 0o777).toString(8);
  }
  return out;
}

describe('qemu provider: the swtpm-localca private keys', { timeout: 60_000 }, () => {
  const dir = tempDir('sextant-localca-');

  const cases: { name: string; make: (caDir: string) => Promise<unknown> }[] = [
    { name: 'made by ensureLocalCa', make: (caDir) => ensureLocalCa(caDir) },
    {
      name: 'made by swtpm_setup on first use',
      make: (caDir) => manufactureTpm(join(caDir, '..', 'tpm'), caDir),
    },
  ];
  for (const c of cases) {
    it(`are 0600 when ${c.name}`, async () => {
      const caDir = join(dir, c.name.replace(/\W+/g, '-'), 'ca');
      await c.make(caDir);
      assert.deepEqual(await keyModes(caDir), {
        'signkey.pem': '600',
        'swtpm-localca-rootca-privkey.pem': '600',
      });
    });
  }

  it('an older workspace with 0640 keys is repaired on its next use', async () => {
    const caDir = join(dir, 'older', 'ca');
    await ensureLocalCa(caDir);
    for (const name of Object.keys(await keyModes(caDir))) await chmod(join(caDir, 'localca', name), 0o640);
    await ensureLocalCa(caDir);
    assert.deepEqual(Object.values(await keyModes(caDir)), ['600', '600']);
  });
});
