// The release signer (scripts/measurements-sign.sh, run by image-measurements.sh) with real openssl and jq: it
// writes the image version and a serial that only grows into the signed document, so an older copy is refusable.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { formatMeasurementsFile, verifyMeasurementsFile } from '../../attestation/measurements.js';
import { everyRequiredPcr } from '../attestation/required-pcrs.js';
import { tempDir } from '../harness/temp-dir.js';

const run = promisify(execFile);
const script = join(import.meta.dirname, '../../scripts/measurements-sign.sh');
const reference = () =>
  JSON.stringify({
    image: 'img-abc',
    source: 'reference boot',
    ...JSON.parse(formatMeasurementsFile(everyRequiredPcr())),
  });

describe('scripts/measurements-sign.sh', () => {
  it('signs version and growing serials; keeps a signed file; an expiry when asked', async () => {
    const img = tempDir('sextant-sign-img-');
    const keys = tempDir('sextant-sign-keys-');
    await writeFile(join(img, 'manifest.json'), JSON.stringify({ image: 'img-abc' }));
    await writeFile(join(img, 'measurements.json'), reference());
    const sign = (env: Record<string, string> = {}) =>
      run('bash', [script, img], { env: { ...process.env, SEXTANT_RELEASE_KEY_DIR: keys, ...env } });
    const signed = async () => {
      const bytes = await readFile(join(img, 'measurements.json'));
      return {
        bytes,
        doc: verifyMeasurementsFile(
          bytes,
          await readFile(join(img, 'measurements.json.sig')),
          await readFile(join(img, 'measurements.pub.pem')),
        ),
      };
    };

    const first = await sign();
    assert.match(
      first.stderr,
      /image version img-abc, serial 1, signed with release key sha256:[0-9a-f]{64}/,
    );
    const one = await signed();
    assert.equal(one.doc.version, 'img-abc');
    assert.equal(one.doc.serial, 1);
    assert.equal((await stat(join(keys, 'measurements-release.key'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(keys, 'measurements-serial'))).mode & 0o777, 0o600);

    await sign();
    assert.deepEqual((await signed()).bytes, one.bytes, 'a signed file is kept as it is');

    // a new reference boot writes a file without serial: the next document of the key is above the last
    await writeFile(join(img, 'measurements.json'), reference());
    await sign({ SEXTANT_MEASUREMENTS_VALID_DAYS: '30' });
    const two = await signed();
    assert.equal(two.doc.serial, 2);
    assert.ok(two.doc.expires && Date.parse(two.doc.expires) > Date.now() + 29 * 86_400_000);

    // a file edited after signing (serial lowered by hand) is re-signed under a fresh serial, never the edited one
    await writeFile(
      join(img, 'measurements.json'),
      JSON.stringify({ ...JSON.parse(two.bytes.toString()), serial: 1 }),
    );
    await sign();
    assert.equal((await signed()).doc.serial, 3);
  });

  it('refuses a serial counter that is not a number', async () => {
    const img = tempDir('sextant-sign-img-');
    const keys = tempDir('sextant-sign-keys-');
    await writeFile(join(img, 'measurements.json'), reference());
    await writeFile(join(keys, 'measurements-serial'), 'seven\n');
    await assert.rejects(
      run('bash', [script, img], { env: { ...process.env, SEXTANT_RELEASE_KEY_DIR: keys } }),
      (err: Error & { stderr: string }) =>
        /measurements-serial: expected a serial, got 'seven'/.test(err.stderr),
    );
  });
});
