// Image measurements from two reference boots: every required boot-chain PCR enforced, and a PCR the two boots
// disagree on fails the generation naming the PCR and the events behind it (never demoted to warnOnly).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { eventsForPcr, parseEventLog, TPM_ALG } from '../../attestation/index.js';
import { measurementWeaknesses, REQUIRED_PCRS } from '../../attestation/measurement-policy.js';
import {
  type ReferenceBoot,
  ReferenceMismatchError,
  referenceMeasurements,
} from '../../attestation/reference-measurements.js';
import { FIXTURE_LOG, fixturePcrs } from './helpers.js';

const log = readFileSync(FIXTURE_LOG);

/** Every PCR 0–15 of the captured boot; PCRs the log does not touch are zero, as the machine reported them. */
function boot(
  name: string,
  overrides: Record<string, string> = {},
  eventLog: Buffer | null = log,
): ReferenceBoot {
  const pcrs: Record<string, string> = {};
  for (let i = 0; i < 16; i++) pcrs[String(i)] = fixturePcrs()[String(i)] ?? '00'.repeat(32);
  return { name, pcrs: { ...pcrs, ...overrides }, ...(eventLog ? { eventLog } : {}) };
}

/** The fixture log with one byte of the SHA-256 digest of PCR `pcr`'s `nth` event flipped. */
function logWithFlippedEvent(pcr: number, nth = 0): { log: Buffer; index: number } {
  const ev = eventsForPcr(parseEventLog(log), pcr)[nth]!;
  const digest = ev.digests.get(TPM_ALG.SHA256)!;
  const at = log.indexOf(digest, ev.offset);
  const out = Buffer.from(log);
  out[at] = out[at]! ^ 0x01;
  return { log: out, index: ev.index };
}

describe('reference measurements', () => {
  test('two agreeing boots: every required PCR enforced, 1 and 10 left out with their reason, nothing warnOnly', () => {
    const notes: string[] = [];
    const m = referenceMeasurements(boot('a'), boot('b'), (n) => notes.push(n));
    assert.deepEqual(Object.keys(m).map(Number), [...REQUIRED_PCRS]);
    assert.deepEqual(measurementWeaknesses(m), []);
    assert.ok(Object.values(m).every((x) => !x.warnOnly));
    assert.equal(m[4]!.expected, fixturePcrs()['4']);
    assert.equal(m[1], undefined);
    assert.equal(m[10], undefined);
    assert.match(notes.join('\n'), /PCR 1 left out: per-VM platform configuration/);
    assert.match(notes.join('\n'), /PCR 10 left out: IMA/);
  });

  test('a boot-chain PCR that differs fails, naming the PCR, both values and the differing event', () => {
    const flipped = logWithFlippedEvent(4);
    const b = boot('ref-b', { '4': 'ab'.repeat(32) }, flipped.log);
    assert.throws(
      () => referenceMeasurements(boot('ref-a'), b),
      (err: unknown) => {
        assert.ok(err instanceof ReferenceMismatchError);
        assert.deepEqual(err.pcrs, [4]);
        assert.match(
          err.message,
          new RegExp(`PCR 4 differs .*ref-a ${fixturePcrs()['4']}, ref-b ${'ab'.repeat(32)}`),
        );
        assert.match(err.message, new RegExp(`differing events: ref-a: #${flipped.index} EV_`));
        assert.match(err.message, /Only PCRs 1, 10 may be left out/);
        return true;
      },
    );
  });

  const cases: Array<{ name: string; pcr: string; value: string | undefined; message: RegExp }> = [
    {
      name: 'PCR 8 (zero without GRUB) differing',
      pcr: '8',
      value: '11'.repeat(32),
      message: /PCR 8 differs/,
    },
    {
      name: 'PCR 12 (command-line overrides) differing',
      pcr: '12',
      value: '22'.repeat(32),
      message: /PCR 12 differs/,
    },
    { name: 'PCR 0 missing from one boot', pcr: '0', value: undefined, message: /PCR 0: b reported nothing/ },
    { name: 'PCR 7 not hex', pcr: '7', value: 'zz', message: /PCR 7: b reported "zz"/ },
  ];
  for (const c of cases) {
    test(`refused: ${c.name}`, () => {
      const b = boot('b');
      if (c.value === undefined) delete b.pcrs[c.pcr];
      else b.pcrs[c.pcr] = c.value;
      assert.throws(() => referenceMeasurements(boot('a'), b), c.message);
    });
  }

  test('without captured logs the mismatch still fails and says the events cannot be named', () => {
    assert.throws(
      () => referenceMeasurements(boot('a', {}, null), boot('b', { '9': '33'.repeat(32) }, null)),
      /PCR 9 differs .*no boot event log captured/,
    );
  });

  test('PCR 1 may differ per VM: it is left out, not a failure', () => {
    const m = referenceMeasurements(boot('a'), boot('b', { '1': '44'.repeat(32) }));
    assert.equal(m[1], undefined);
  });
});
