// @tier system: swtpm
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { openTpm } from '../../../native/tpm/index.js';
import { cliPcrRead, defer, freshSwtpm, tpm2 } from './tools.js';

const sha256 = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
const ALL = Array.from({ length: 24 }, (_, i) => i);

test('readPcrs returns the same 24 SHA-256 values as tpm2_pcrread', async (t) => {
  const swtpm = await freshSwtpm(t);
  // Make the bank non-trivial first, through the CLI, so equality is not just zeros.
  for (const pcr of [0, 7, 8, 16, 23]) {
    await tpm2(swtpm, 'tpm2_pcrextend', [`${pcr}:sha256=${randomBytes(32).toString('hex')}`]);
  }
  const tpm = await openTpm(swtpm.tcti);
  defer(t, () => tpm.close());
  const ours = await tpm.readPcrs();
  assert.deepEqual([...ours.keys()], ALL);
  const theirs = await cliPcrRead(swtpm, ALL);
  assert.equal(theirs.size, 24);
  for (const i of ALL) assert.deepEqual(ours.get(i), theirs.get(i), `PCR ${i}`);
  // A sparse, unordered selection with duplicates maps back to exactly the PCRs asked for.
  const some = await tpm.readPcrs([23, 0, 16, 0, 9]);
  assert.deepEqual([...some.keys()], [0, 9, 16, 23]);
  for (const [i, v] of some) assert.deepEqual(v, theirs.get(i));
});

test('extendPcr and pcrEvent are visible to tpm2_pcrread and equal sha256(old || digest)', async (t) => {
  const swtpm = await freshSwtpm(t);
  const tpm = await openTpm(swtpm.tcti);
  defer(t, () => tpm.close());
  const old = (await tpm.readPcrs([15])).get(15) as Buffer;
  const digest = randomBytes(32);
  await tpm.extendPcr(15, digest);
  const afterExtend = (await cliPcrRead(swtpm, [15])).get(15);
  assert.deepEqual(afterExtend, sha256(old, digest));

  const data = Buffer.from('cluster-id:0123456789abcdef');
  await tpm.pcrEvent(15, data);
  const afterEvent = (await cliPcrRead(swtpm, [15])).get(15);
  assert.deepEqual(afterEvent, sha256(afterExtend as Buffer, sha256(data)));
  assert.deepEqual((await tpm.readPcrs([15])).get(15), afterEvent);
});

test('a restart of the same TPM (a node reboot) resets PCR 15', async (t) => {
  const swtpm = await freshSwtpm(t);
  let tpm = await openTpm(swtpm.tcti);
  await tpm.extendPcr(15, randomBytes(32));
  assert.notDeepEqual((await tpm.readPcrs([15])).get(15), Buffer.alloc(32));
  await tpm.close();
  await swtpm.restart();
  tpm = await openTpm(swtpm.tcti);
  defer(t, () => tpm.close());
  assert.deepEqual((await tpm.readPcrs([15])).get(15), Buffer.alloc(32));
});

test('getRandom returns exactly the bytes asked for, across several TPM calls', async (t) => {
  const swtpm = await freshSwtpm(t);
  const tpm = await openTpm(swtpm.tcti);
  defer(t, () => tpm.close());
  for (const n of [0, 1, 32, 64, 65, 200]) assert.equal((await tpm.getRandom(n)).length, n);
  assert.notDeepEqual(await tpm.getRandom(32), await tpm.getRandom(32));
  await assert.rejects(tpm.getRandom(-1), RangeError);
});
