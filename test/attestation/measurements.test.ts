import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  formatMeasurementsFile,
  loadMeasurementsFile,
  type Measurements,
  parseMeasurements,
  parseMeasurementsFile,
  pcr15ForClusterId,
  signMeasurements,
  verifyMeasurementsFile,
} from '../../attestation/index.js';
import { failsAt } from './helpers.js';

const good: Measurements = {
  4: { expected: 'a0'.repeat(32), warnOnly: false },
  15: { expected: '0f'.repeat(32), warnOnly: true },
};

describe('measurements', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sextant-measurements-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('parse: normalises hex, defaults warnOnly, round-trips through the file format', () => {
    const m = parseMeasurements({
      '4': { expected: 'A0'.repeat(32) },
      '15': { expected: '0f'.repeat(32), warnOnly: true },
    });
    assert.deepEqual(m, good);
    assert.deepEqual(parseMeasurementsFile(formatMeasurementsFile(m)), good);
  });

  test('parse errors name the key and the field', () => {
    assert.throws(
      () => parseMeasurements({ '24': { expected: '00'.repeat(32) } }),
      failsAt('config', /\["24"\]: key/),
    );
    assert.throws(
      () => parseMeasurements({ pcr4: { expected: '00'.repeat(32) } }),
      failsAt('config', /\["pcr4"\]/),
    );
    assert.throws(
      () => parseMeasurements({ '4': { expected: 'zz' } }),
      failsAt('config', /\["4"\]\.expected/),
    );
    assert.throws(
      () => parseMeasurements({ '4': { expected: '00'.repeat(32), warnOnly: 'yes' } }),
      failsAt('config', /\["4"\]\.warnOnly/),
    );
    assert.throws(
      () => parseMeasurements({ '4': { expected: '00'.repeat(32), extra: 1 } }),
      failsAt('config', /unknown field\(s\) extra/),
    );
    assert.throws(() => parseMeasurements([]), failsAt('config'));
    assert.throws(() => parseMeasurementsFile('{'), failsAt('config', /not valid JSON/));
    assert.throws(() => parseMeasurementsFile('{"pcrs":{}}'), failsAt('config', /"measurements"/));
  });

  for (const kind of ['ed25519', 'P-256'] as const) {
    test(`signed file (${kind}): verifies, and a bad signature or altered file is refused`, async () => {
      const { privateKey, publicKey } =
        kind === 'ed25519'
          ? generateKeyPairSync('ed25519')
          : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const bytes = Buffer.from(formatMeasurementsFile(good));
      const sig = signMeasurements(bytes, privateKey);
      assert.deepEqual(verifyMeasurementsFile(bytes, sig, publicKey), good);
      const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
      assert.deepEqual(verifyMeasurementsFile(bytes, sig, pem), good);

      const badSig = Buffer.from(sig);
      badSig[badSig.length - 2] = badSig[badSig.length - 2]! ^ 0x40;
      assert.throws(
        () => verifyMeasurementsFile(bytes, badSig, publicKey),
        failsAt('measurements', /signature/),
      );
      const altered = Buffer.from(bytes.toString().replace('a0a0', 'a0a1'));
      assert.throws(() => verifyMeasurementsFile(altered, sig, publicKey), failsAt('measurements'));
      const other = generateKeyPairSync('ed25519').publicKey;
      assert.throws(() => verifyMeasurementsFile(bytes, sig, other), failsAt('measurements'));

      const path = join(dir, `m-${kind}.json`);
      await writeFile(path, bytes);
      await writeFile(`${path}.sig`, sig);
      assert.deepEqual(await loadMeasurementsFile(path, { publicKey: pem }), good);
      await writeFile(`${path}.sig`, badSig);
      await assert.rejects(() => loadMeasurementsFile(path, { publicKey: pem }), failsAt('measurements'));
    });
  }

  test('loading: no key means refusal unless unsigned files are allowed; a missing signature is refused', async () => {
    const path = join(dir, 'unsigned.json');
    await writeFile(path, formatMeasurementsFile(good));
    await assert.rejects(() => loadMeasurementsFile(path), failsAt('config', /no measurements public key/));
    assert.deepEqual(await loadMeasurementsFile(path, { allowUnsigned: true }), good);
    const { publicKey } = generateKeyPairSync('ed25519');
    await assert.rejects(
      () => loadMeasurementsFile(path, { publicKey }),
      failsAt('measurements', /unsigned\.json\.sig/),
    );
  });

  test('only Ed25519 and ECDSA P-256 keys are accepted', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    assert.throws(() => signMeasurements(Buffer.from('x'), privateKey), failsAt('config', /secp384r1/));
    assert.throws(
      () => verifyMeasurementsFile(Buffer.from('x'), Buffer.alloc(64), publicKey),
      failsAt('config'),
    );
  });

  test('PCR 15 after extending the cluster ID into a zero PCR', () => {
    const id = Buffer.alloc(32, 7);
    assert.equal(
      pcr15ForClusterId(id),
      createHash('sha256')
        .update(Buffer.concat([Buffer.alloc(32), id]))
        .digest('hex'),
    );
    assert.throws(() => pcr15ForClusterId(Buffer.alloc(31)), /32 bytes/);
  });
});
