// @tier system: swtpm
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { openTpm, TpmError } from '../../../native/tpm/index.js';
import { defer, freshSwtpm } from './tools.js';

test('an unreachable TPM is reported plainly', async () => {
  await assert.rejects(openTpm('swtpm:host=127.0.0.1,port=1'), (err: unknown) => {
    assert.ok(err instanceof TpmError);
    assert.equal(err.operation, 'open');
    assert.match(err.message, /^cannot open TPM at "swtpm:host=127\.0\.0\.1,port=1": .*connection refused/);
    assert.match(err.rcText, /IO failure/);
    return true;
  });
  await assert.rejects(
    openTpm('device:/dev/sextant-no-such-tpm'),
    /cannot open TPM at "device:\/dev\/sextant-no-such-tpm"/,
  );
});

test('a wrong TCTI string is reported plainly', async () => {
  await assert.rejects(openTpm('no-such-tcti:foo'), /cannot open TPM at "no-such-tcti:foo": .*unknown TCTI/);
  await assert.rejects(
    openTpm('swtpm:this is not a config'),
    /cannot open TPM at "swtpm:this is not a config": .*malformed/,
  );
  await assert.rejects(openTpm(''), TypeError);
});

test('argument errors name the argument and never reach the TPM', async (t) => {
  const swtpm = await freshSwtpm(t);
  const tpm = await openTpm(swtpm.tcti);
  defer(t, () => tpm.close());
  await assert.rejects(tpm.readPcrs([24]), { name: 'RangeError', message: /indices\[0\].*0–23.*24/ });
  await assert.rejects(tpm.readPcrs([-1]), RangeError);
  await assert.rejects(tpm.readPcrs([1.5]), RangeError);
  await assert.rejects(tpm.readPcrs([]), RangeError);
  await assert.rejects(tpm.extendPcr(24, randomBytes(32)), {
    name: 'RangeError',
    message: /extendPcr: index/,
  });
  await assert.rejects(tpm.extendPcr(15, randomBytes(31)), {
    name: 'RangeError',
    message: /extendPcr: digest.*32/,
  });
  await assert.rejects(tpm.pcrEvent(15, Buffer.alloc(1025)), {
    name: 'RangeError',
    message: /pcrEvent: data/,
  });
  const ak = await tpm.createAk();
  await assert.rejects(tpm.quote(ak, [0, 30], randomBytes(32)), {
    name: 'RangeError',
    message: /quote: pcrs\[1\]/,
  });
  await assert.rejects(tpm.quote(ak, [0], randomBytes(65)), {
    name: 'RangeError',
    message: /qualifyingData/,
  });
  await assert.rejects(tpm.createAk('dsa' as 'ecc'), { name: 'TypeError', message: /algorithm/ });
  // Nothing above reached the TPM: PCR 15 is untouched.
  assert.deepEqual((await tpm.readPcrs([15])).get(15), Buffer.alloc(32));
});

test('a flushed handle reused is a TpmError, and the TPM keeps working', async (t) => {
  const swtpm = await freshSwtpm(t);
  const tpm = await openTpm(swtpm.tcti);
  defer(t, () => tpm.close());
  const ak = await tpm.createAk('ecc');
  await tpm.flush(ak.handle);
  await assert.rejects(tpm.quote(ak, [0], randomBytes(32)), (err: unknown) => {
    assert.ok(err instanceof TpmError);
    assert.match(err.operation, /^quote/);
    assert.ok(err.rcText.length > 0);
    return true;
  });
  await assert.rejects(tpm.flush(ak.handle), TpmError);
  await assert.rejects(tpm.readPublic(ak.handle), TpmError);
  // Three object slots on swtpm: creating and flushing more AKs than that proves nothing leaks.
  for (let i = 0; i < 5; i++) await tpm.flush((await tpm.createAk('ecc')).handle);
  assert.equal((await tpm.getRandom(8)).length, 8);
});

test('use after close is refused before any TPM call; close is idempotent and flushes', async (t) => {
  const swtpm = await freshSwtpm(t);
  const tpm = await openTpm(swtpm.tcti);
  await tpm.createAk('ecc');
  await tpm.createAk('ecc');
  await tpm.createAk('ecc');
  await tpm.close();
  await tpm.close();
  await assert.rejects(tpm.readPcrs(), { name: 'TypeError', message: /closed/ });
  await assert.rejects(tpm.getRandom(8), { name: 'TypeError', message: /getRandom: .*closed/ });
  // The three AKs were flushed on close, so a new context can load three more.
  const next = await openTpm(swtpm.tcti);
  defer(t, () => next.close());
  for (let i = 0; i < 3; i++) await next.createAk('ecc');
});

test('calls issued concurrently on one context are serialized and all succeed', async (t) => {
  const swtpm = await freshSwtpm(t);
  const tpm = await openTpm(swtpm.tcti);
  defer(t, () => tpm.close());
  const ak = await tpm.createAk('ecc');
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  try {
    const results = await Promise.all([
      ...Array.from({ length: 10 }, () => tpm.readPcrs()),
      ...Array.from({ length: 10 }, () => tpm.quote(ak, [0, 15], randomBytes(32))),
      ...Array.from({ length: 10 }, () => tpm.extendPcr(16, randomBytes(32))),
    ]);
    assert.equal(results.length, 30);
  } finally {
    clearInterval(timer);
  }
  assert.ok(ticks > 0, 'the event loop kept running during TPM calls');
});
