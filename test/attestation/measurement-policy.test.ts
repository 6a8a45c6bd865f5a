// The minimum enforced measurement set: a policy that checks nothing (empty, all warnOnly, a boot-chain PCR missing)
// is refused unless the operator explicitly asked for insecure measurements, and then every weakness is said.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Measurements } from '../../attestation/index.js';
import { enforceMeasurementPolicy, REQUIRED_PCRS } from '../../attestation/measurement-policy.js';
import { failsAt } from './helpers.js';

function full(over: Measurements = {}): Measurements {
  const m: Measurements = {};
  for (const pcr of REQUIRED_PCRS) m[pcr] = { expected: '00'.repeat(32), warnOnly: false };
  return { ...m, ...over };
}

function without(m: Measurements, pcr: number): Measurements {
  const out = { ...m };
  delete out[pcr];
  return out;
}

describe('minimum enforced measurements', () => {
  test('the boot chain 0, 2-9, 11-14 enforced passes; 1, 10 and 15 may be absent or warnOnly', () => {
    assert.deepEqual([...REQUIRED_PCRS], [0, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14]);
    assert.doesNotThrow(() => enforceMeasurementPolicy(full()));
    assert.doesNotThrow(() =>
      enforceMeasurementPolicy(
        full({
          1: { expected: '11'.repeat(32), warnOnly: true },
          15: { expected: '00'.repeat(32), warnOnly: true },
        }),
      ),
    );
  });

  const allWarn: Measurements = {};
  for (const pcr of REQUIRED_PCRS) allWarn[pcr] = { expected: '00'.repeat(32), warnOnly: true };
  const weak: Array<{ name: string; m: Measurements; message: RegExp }> = [
    { name: 'an empty set', m: {}, message: /PCR 0 is not measured; PCR 2 is not measured/ },
    { name: 'every PCR warnOnly', m: allWarn, message: /PCR 0 is warnOnly; .*PCR 14 is warnOnly/ },
    {
      name: 'PCR 4 (the UKI) warnOnly',
      m: full({ 4: { expected: '00'.repeat(32), warnOnly: true } }),
      message: /: PCR 4 is warnOnly$/,
    },
    { name: 'PCR 8 left out', m: without(full(), 8), message: /: PCR 8 is not measured$/ },
    { name: 'PCR 11 left out', m: without(full(), 11), message: /: PCR 11 is not measured$/ },
  ];
  for (const { name, m, message } of weak) {
    test(`refused: ${name}`, () => {
      assert.throws(
        () => enforceMeasurementPolicy(m, { where: 'test set' }),
        failsAt('measurements', message),
      );
    });
    test(`accepted only with insecure, each weakness said: ${name}`, () => {
      const lines: string[] = [];
      assert.equal(enforceMeasurementPolicy(m, { insecure: true, onInsecure: (l) => lines.push(l) }), m);
      assert.ok(lines.length > 0);
      assert.ok(lines.every((l) => l.startsWith('INSECURE: ')));
    });
  }
});
