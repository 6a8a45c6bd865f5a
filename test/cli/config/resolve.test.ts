// The workspace's pin of the signed measurements: every load refuses another release key (by its
// fingerprint, not its path) and a document older than the pinned serial, naming the config field.
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import type { MeasurementsDocument } from '../../../attestation/measurements.js';
import { loadConfiguredMeasurements } from '../../../cli/config/resolve.js';
import { defaultQemuConfig } from '../../../cli/config/schema.js';
import { ConfigError } from '../../../cli/config/validate.js';
import { everyRequiredPcr } from '../../attestation/required-pcrs.js';
import { type SignedWorkspace, writeSignedWorkspace } from '../../harness/signed-workspace.js';
import { tempDir } from '../../harness/temp-dir.js';

const release = generateKeyPairSync('ed25519');
/** A workspace with nothing in it but what the config writes inline. */
const inlineDir = tempDir('sextant-resolve-inline-');
const other = generateKeyPairSync('ed25519');

/** A workspace whose config pins `pin` (serial and key fingerprint) and holds `doc` signed by `signer`. */
function workspace(options: {
  doc: Omit<MeasurementsDocument, 'measurements'>;
  signer?: KeyObject;
  keyFile?: KeyObject;
  pin: { serial: number; key: KeyObject };
}): Promise<SignedWorkspace> {
  return writeSignedWorkspace(tempDir('sextant-resolve-'), { ...options, release });
}

describe('loadConfiguredMeasurements: the pinned serial and release key', () => {
  const accepted: Array<{ name: string; doc: Omit<MeasurementsDocument, 'measurements'>; pin: number }> = [
    { name: 'the pinned serial', doc: { version: 'img-2', serial: 2 }, pin: 2 },
    { name: 'a newer serial by the same key', doc: { version: 'img-3', serial: 3 }, pin: 2 },
    {
      name: 'a document not yet expired',
      doc: { version: 'img-2', serial: 2, expires: '2999-01-01T00:00:00Z' },
      pin: 2,
    },
  ];
  for (const c of accepted) {
    it(`accepts ${c.name} and returns its version and serial`, async () => {
      const w = await workspace({ doc: c.doc, pin: { serial: c.pin, key: release.publicKey } });
      const doc = await loadConfiguredMeasurements(w.dir, w.config);
      assert.equal(doc.version, c.doc.version);
      assert.equal(doc.serial, c.doc.serial);
      assert.deepEqual(doc.measurements, everyRequiredPcr());
    });
  }

  const refused: Array<{
    name: string;
    setup: Parameters<typeof workspace>[0];
    field?: string;
    error: RegExp;
  }> = [
    {
      name: 'an older signed document (lower serial) swapped into the workspace',
      setup: { doc: { version: 'img-1', serial: 1 }, pin: { serial: 2, key: release.publicKey } },
      field: 'attestation.measurementsSerial',
      error:
        /measurements\.json is serial 1 \(version img-1\), older than the pinned serial 2: refusing a downgrade/,
    },
    {
      name: 'another key file (and a document it signs) at the pinned path',
      setup: {
        doc: { version: 'img-9', serial: 9 },
        signer: other.privateKey,
        keyFile: other.publicKey,
        pin: { serial: 2, key: release.publicKey },
      },
      field: 'attestation.measurementsKeyFingerprint',
      error:
        /measurements-key\.pem is the key sha256:[0-9a-f]{64}, not the pinned release key sha256:[0-9a-f]{64}/,
    },
    {
      name: 'an expired document',
      setup: {
        doc: { version: 'img-2', serial: 2, expires: '2020-01-01T00:00:00Z' },
        pin: { serial: 2, key: release.publicKey },
      },
      error: /expires: the document \(version img-2, serial 2\) expired at 2020-01-01T00:00:00Z/,
    },
    {
      name: 'a signed document without a serial',
      setup: { doc: { version: 'img-2' }, pin: { serial: 1, key: release.publicKey } },
      error: /serial: missing; a signed measurements document must carry the image version and its serial/,
    },
    {
      name: 'a signed document without the image version',
      setup: { doc: { serial: 2 }, pin: { serial: 1, key: release.publicKey } },
      error: /version: missing/,
    },
  ];
  for (const c of refused) {
    it(`refuses ${c.name}`, async () => {
      const w = await workspace(c.setup);
      await assert.rejects(loadConfiguredMeasurements(w.dir, w.config), (err: Error) => {
        assert.match(err.message, c.error);
        if (c.field) {
          assert.ok(err instanceof ConfigError, `a ConfigError, got ${err.name}`);
          assert.equal(err.keyPath, c.field);
        }
        return true;
      });
    });
  }
});

describe('loadConfiguredMeasurements: measurements written inline are unsigned', () => {
  const cases: {
    name: string;
    allowUnsigned: boolean;
    error?: RegExp;
    warning?: RegExp;
  }[] = [
    {
      name: 'refused without --insecure-measurements, naming the field and why',
      allowUnsigned: false,
      error: /attestation\.measurements: written inline, so unsigned: measurements must be signed/,
    },
    {
      name: 'used with --insecure-measurements, said INSECURE',
      allowUnsigned: true,
      warning: /^INSECURE: the measurements written inline in sextant-conf\.yaml are unsigned/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const config = defaultQemuConfig();
      config.attestation.measurements = everyRequiredPcr();
      const warnings: string[] = [];
      const load = loadConfiguredMeasurements(inlineDir, config, {
        allowUnsigned: c.allowUnsigned,
        onUnsigned: (line) => warnings.push(line),
      });
      if (c.error) {
        await assert.rejects(load, (err: Error) => {
          assert.ok(err instanceof ConfigError, `a ConfigError, got ${err.name}`);
          assert.equal(err.keyPath, 'attestation.measurements');
          assert.match(err.message, c.error as RegExp);
          return true;
        });
        assert.deepEqual(warnings, []);
      } else {
        assert.deepEqual((await load).measurements, everyRequiredPcr());
        assert.equal(warnings.length, 1);
        assert.match(warnings[0] as string, c.warning as RegExp);
      }
    });
  }

  it('an empty inline set is refused as empty, not as unsigned', async () => {
    const config = defaultQemuConfig();
    config.attestation.measurements = {};
    await assert.rejects(
      loadConfiguredMeasurements(inlineDir, config, { allowUnsigned: true }),
      /attestation\.measurements: empty; refusing to trust any node/,
    );
  });
});
