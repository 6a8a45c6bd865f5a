// `-o json` through cli/commands/output.ts: the flag's values, and `version` and `verify` printing one JSON
// document on stdout (verify's verdict there too when it fails; its reason also on stderr).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { UsageError } from '../../../cli/commands/context.js';
import { parseOutputFormat } from '../../../cli/commands/output.js';
import { saveConfig } from '../../../cli/config/file.js';
import { defaultQemuConfig } from '../../../cli/config/schema.js';
import { runCliInProcess } from '../../harness/cli.js';

describe('parseOutputFormat', () => {
  const cases: [string | boolean | undefined, string | RegExp][] = [
    [undefined, 'text'],
    ['text', 'text'],
    ['json', 'json'],
    ['yaml', /^--output: expected text or json, got "yaml"$/],
    ['JSON', /got "JSON"/],
    [true, /got true/],
  ];
  for (const [value, want] of cases) {
    it(`${JSON.stringify(value)} → ${want}`, () => {
      if (typeof want === 'string') assert.equal(parseOutputFormat(value, 'verify'), want);
      else
        assert.throws(
          () => parseOutputFormat(value, 'verify'),
          (err: Error) => err instanceof UsageError && want.test(err.message) && err.command === 'verify',
        );
    });
  }
});

describe('-o json on version and verify', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('version -o json: the CLI, Node and platform', async () => {
    const text = await runCliInProcess(['version']);
    const r = await runCliInProcess(['version', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const v = JSON.parse(r.stdout) as { cli: string; node: string; platform: string };
    assert.deepEqual(Object.keys(v), ['cli', 'node', 'platform']);
    assert.equal(v.node, process.version);
    assert.equal(text.stdout, `sextant ${v.cli}\nnode ${v.node} ${v.platform}\n`);
  });

  it('verify -o json: a refused verdict is JSON on stdout too, exit 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sextant-output-'));
    dirs.push(dir);
    // the default config has no measurements yet: refused before any node is asked
    await saveConfig(dir, defaultQemuConfig());
    const r = await runCliInProcess([
      'verify',
      '--endpoint',
      '127.0.0.1:1',
      '-o',
      'json',
      '--workspace',
      dir,
    ]);
    assert.equal(r.code, 1);
    const report = JSON.parse(r.stdout) as { endpoint: string; verified: boolean; reason: string };
    assert.equal(report.verified, false);
    assert.equal(report.endpoint, '127.0.0.1:1');
    assert.match(report.reason, /attestation\.measurements: empty/);
    assert.match(r.stderr, /^not verified: .*attestation\.measurements: empty/);
  });
});
