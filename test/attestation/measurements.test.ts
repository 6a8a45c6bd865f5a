import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  formatMeasurementsFile,
  loadMeasurementsFile,
  type Measurements,
  parseMeasurements,
  parseMeasurementsFile,
  pcr15ForClusterId,
  releaseKeyFingerprint,
  signMeasurements,
  verifyMeasurementsFile,
} from '../../attestation/index.js';
import { tempDir } from '../harness/temp-dir.js';
import { failsAt } from './helpers.js';

const release = { version: 'img-7', serial: 7 };
const good: Measurements = {
  4: { expected: 'a0'.repeat(32), warnOnly: false },
  15: { expected: '0f'.repeat(32), warnOnly: true },
};

describe('measurements', () => {
  const dir = tempDir('sextant-measurements-');

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
      const bytes = Buffer.from(formatMeasurementsFile(good, release));
      const sig = signMeasurements(bytes, privateKey);
      assert.deepEqual(verifyMeasurementsFile(bytes, sig, publicKey), { ...release, measurements: good });
      const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
      assert.deepEqual(verifyMeasurementsFile(bytes, sig, pem).measurements, good);

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
      assert.deepEqual((await loadMeasurementsFile(path, { publicKey: pem })).measurements, good);
      await writeFile(`${path}.sig`, badSig);
      await assert.rejects(() => loadMeasurementsFile(path, { publicKey: pem }), failsAt('measurements'));
    });
  }

  test('loading: no key means refusal unless unsigned files are allowed; a missing signature is refused', async () => {
    const path = join(dir, 'unsigned.json');
    await writeFile(path, formatMeasurementsFile(good));
    await assert.rejects(() => loadMeasurementsFile(path), failsAt('config', /no measurements public key/));
    assert.deepEqual((await loadMeasurementsFile(path, { allowUnsigned: true })).measurements, good);
    const { publicKey } = generateKeyPairSync('ed25519');
    await assert.rejects(
      () => loadMeasurementsFile(path, { publicKey }),
      failsAt('measurements', /unsigned\.json\.sig/),
    );
  });

  // a signed document says which image it is of and its serial, so an older copy is refusable
  const documents: Array<{ name: string; doc: object; error?: RegExp; expect?: object }> = [
    { name: 'version, serial and a future expiry', doc: { ...release, expires: '2999-12-31T00:00:00Z' } },
    { name: 'no serial', doc: { version: 'img-7' }, error: /serial: missing/ },
    { name: 'no version', doc: { serial: 7 }, error: /version: missing/ },
    { name: 'serial 0', doc: { version: 'img-7', serial: 0 }, error: /serial: expected a positive integer/ },
    { name: 'a string serial', doc: { version: 'img-7', serial: '7' }, error: /serial: expected a positive/ },
    { name: 'a fractional serial', doc: { version: 'img-7', serial: 1.5 }, error: /serial: expected/ },
    {
      name: 'an empty version',
      doc: { version: '', serial: 7 },
      error: /version: expected the image version/,
    },
    {
      name: 'an expiry that is not RFC 3339',
      doc: { ...release, expires: 'tomorrow' },
      error: /expires: expected an RFC 3339 time/,
    },
    {
      name: 'an expired document',
      doc: { ...release, expires: '2021-06-01T00:00:00Z' },
      error: /expires: the document \(version img-7, serial 7\) expired at 2021-06-01T00:00:00Z/,
    },
    { name: 'an unknown field', doc: { ...release, floor: 1 }, error: /unknown field\(s\) floor/ },
  ];
  for (const c of documents) {
    test(`signed document with ${c.name}: ${c.error ? 'refused, naming the field' : 'accepted'}`, () => {
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const bytes = Buffer.from(JSON.stringify({ ...c.doc, measurements: { '4': good[4] } }));
      const sig = signMeasurements(bytes, privateKey);
      if (c.error) assert.throws(() => verifyMeasurementsFile(bytes, sig, publicKey), c.error);
      else assert.equal(verifyMeasurementsFile(bytes, sig, publicKey).serial, 7);
    });
  }

  test('the release key fingerprint is SHA-256 of its SPKI', () => {
    const { publicKey } = generateKeyPairSync('ed25519');
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    assert.equal(
      releaseKeyFingerprint(publicKey.export({ type: 'spki', format: 'pem' }) as string),
      `sha256:${createHash('sha256').update(spki).digest('hex')}`,
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
