// A tampered image (one more word on the kernel command line) in a workspace with the cluster's config and
// pinned measurements: init refuses it before anything is sent, naming the PCRs that differ.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadConfig, saveConfig } from '../../../cli/config/file.js';
import { processesOf, repo } from '../mini-cluster.js';
import type { Scenario } from './scenario.js';

const run = promisify(execFile);

async function buildImage(env: NodeJS.ProcessEnv = {}): Promise<string> {
  const { stdout } = await run('bash', [join(repo, 'scripts/image-build.sh')], {
    env: { ...process.env, ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout.trim().split('\n').pop() ?? '';
}

export const tamperedImage: Scenario = {
  name: 'a tampered image is refused before anything is sent, naming the PCRs',
  async run(c) {
    const tampered = join(c.work, 'tampered');
    await mkdir(tampered);
    const bad = await buildImage({ SEXTANT_CMDLINE_EXTRA: 'sextant.tampered=1' });
    await buildImage(); // image/build/current back to the real image
    for (const f of (await readdir(c.ws)).filter(
      (n) => n === 'sextant-conf.yaml' || n.startsWith('sextant-measurements'),
    )) {
      await writeFile(join(tampered, f), await readFile(join(c.ws, f)));
    }
    const config = await loadConfig(tampered);
    config.nodes = { controlPlanes: 1, workers: 0 };
    config.provider.qemu.image = bad;
    config.provider.qemu.subnet = 'auto';
    delete config.provider.qemu.release;
    await saveConfig(tampered, config);
    try {
      assert.equal((await c.sextant(['create'], tampered)).code, 0);
      // with the operator's KMS token: the KMS answers, the node's attestation is what refuses
      const refused = await c.sextant(['init', '--timeout', '300'], tampered, c.kms.env);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /nothing was sent: .*PCR (4|11): expected/);
      assert.ok(
        !(await readdir(tampered)).some((n) => n.startsWith('sextant-mastersecret')),
        'no master secret made for a node that failed its attestation',
      );
    } finally {
      assert.equal((await c.sextant(['terminate', '--yes'], tampered)).code, 0);
    }
    assert.deepEqual(await processesOf(tampered), []);
  },
};
