// @tier system: swtpm
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ParseError } from '../../../attestation/errors.js';
import { parseTpmsAttest } from '../../../attestation/tpm-structures.js';
import { type AkAlgorithm, objectName, openTpm, publicKeyFromTpmt } from '../../../native/tpm/index.js';
import { defer, freshSwtpm, scratch, tpm2 } from './tools.js';

const PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 15];

/** tpm2-tools' "serialized" PCR file (tpm2_quote -o): TPML_PCR_SELECTION, a count, then TPML_DIGESTs, as C structs. */
function serializedPcrs(pcrs: readonly number[], values: Map<number, Buffer>): Buffer {
  const selection = Buffer.alloc(132);
  selection.writeUInt32LE(1, 0);
  selection.writeUInt16LE(0x000b, 4);
  selection.writeUInt8(3, 6);
  for (const i of pcrs) selection[7 + (i >> 3)] = (selection[7 + (i >> 3)] ?? 0) | (1 << (i & 7));
  const lists: Buffer[] = [];
  for (let start = 0; start < pcrs.length; start += 8) {
    const chunk = pcrs.slice(start, start + 8);
    const list = Buffer.alloc(532);
    list.writeUInt32LE(chunk.length, 0);
    chunk.forEach((pcr, n) => {
      const value = values.get(pcr) as Buffer;
      list.writeUInt16LE(value.length, 4 + n * 66);
      value.copy(list, 6 + n * 66);
    });
    lists.push(list);
  }
  const count = Buffer.alloc(4);
  count.writeUInt32LE(lists.length);
  return Buffer.concat([selection, count, ...lists]);
}

for (const algorithm of ['ecc', 'rsa'] as AkAlgorithm[]) {
  test(`a ${algorithm.toUpperCase()} quote made by the binding verifies with tpm2_checkquote`, async (t) => {
    const swtpm = await freshSwtpm(t);
    const dir = await scratch(t);
    const tpm = await openTpm(swtpm.tcti);
    defer(t, () => tpm.close());
    await tpm.extendPcr(15, randomBytes(32));
    const ak = await tpm.createAk(algorithm);
    assert.deepEqual(ak.name, objectName(ak.public));
    const read = await tpm.readPublic(ak.handle);
    assert.deepEqual(read, { public: ak.public, name: ak.name });

    const nonce = randomBytes(32);
    const q = await tpm.quote(ak, PCRS, nonce);
    const info = parseTpmsAttest(q.attest);
    assert.deepEqual(info.extraData, nonce);
    assert.deepEqual(info.quote?.pcrSelect, [{ hashAlg: 0x000b, pcrs: PCRS }]);
    const values = await tpm.readPcrs(PCRS);
    const concatenated = Buffer.concat(PCRS.map((i) => values.get(i) as Buffer));
    assert.deepEqual(info.quote?.pcrDigest, createHash('sha256').update(concatenated).digest());

    await writeFile(
      join(dir, 'ak.pem'),
      publicKeyFromTpmt(ak.public).export({ type: 'spki', format: 'pem' }),
    );
    await writeFile(join(dir, 'quote.msg'), q.attest);
    await writeFile(join(dir, 'quote.sig'), q.signature);
    await writeFile(join(dir, 'pcrs.bin'), serializedPcrs(PCRS, values));
    const check = (qualification: string) =>
      tpm2(
        null,
        'tpm2_checkquote',
        [
          ...['-u', 'ak.pem', '-m', 'quote.msg', '-s', 'quote.sig', '-g', 'sha256'],
          ...['-f', 'pcrs.bin', '-q', qualification],
        ],
        dir,
      );
    await check(nonce.toString('hex'));
    await assert.rejects(check(randomBytes(32).toString('hex')), 'a wrong nonce must not verify');

    // Same template, same seed: the AK is the same key after a reboot.
    await tpm.close();
    await swtpm.restart();
    const again = await openTpm(swtpm.tcti);
    defer(t, () => again.close());
    assert.deepEqual((await again.createAk(algorithm)).public, ak.public);
  });
}

test('a quote made by tpm2_quote is parsed by parseTpmsAttest', async (t) => {
  const swtpm = await freshSwtpm(t);
  const dir = await scratch(t);
  await tpm2(swtpm, 'tpm2_flushcontext', ['-t']);
  await tpm2(
    swtpm,
    'tpm2_createprimary',
    [
      ...['-C', 'e', '-g', 'sha256', '-G', 'ecc256:ecdsa-sha256:null', '-c', 'ak.ctx'],
      ...['-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign'],
    ],
    dir,
  );
  const nonce = randomBytes(20);
  try {
    await tpm2(
      swtpm,
      'tpm2_quote',
      [
        ...['-c', 'ak.ctx', '-l', 'sha256:0,7,15', '-q', nonce.toString('hex')],
        ...['-m', 'quote.msg', '-s', 'quote.sig', '-g', 'sha256'],
      ],
      dir,
    );
  } finally {
    await tpm2(swtpm, 'tpm2_flushcontext', ['-t']);
  }
  const info = parseTpmsAttest(await readFile(join(dir, 'quote.msg')));
  assert.equal(info.magic, 0xff544347);
  assert.equal(info.type, 0x8018);
  assert.deepEqual(info.extraData, nonce);
  assert.deepEqual(info.quote?.pcrSelect, [{ hashAlg: 0x000b, pcrs: [0, 7, 15] }]);
  const tpm = await openTpm(swtpm.tcti);
  defer(t, () => tpm.close());
  const values = await tpm.readPcrs([0, 7, 15]);
  const expected = createHash('sha256')
    .update(Buffer.concat([...values.values()]))
    .digest();
  assert.deepEqual(info.quote?.pcrDigest, expected);
  assert.throws(() => parseTpmsAttest(Buffer.alloc(10)), ParseError);
});
