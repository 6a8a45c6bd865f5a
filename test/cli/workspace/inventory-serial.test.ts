// The workspace's inventory serial: each re-sign takes the next one, and a damaged file is refused, named.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  INVENTORY_SERIAL_FILE,
  lastInventorySerial,
  nextInventorySerial,
} from '../../../cli/workspace/inventory-serial.js';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'sextant-inventory-serial-'));
});
after(() => rm(root, { recursive: true, force: true }));

describe('inventory serial', () => {
  it('starts at 1 and rises by one on every re-sign, kept 0600', async () => {
    const dir = await mkdtemp(join(root, 'fresh-'));
    assert.equal(await lastInventorySerial(dir), 0);
    assert.deepEqual([await nextInventorySerial(dir), await nextInventorySerial(dir)], [1, 2]);
    assert.equal(await lastInventorySerial(dir), 2);
    const path = join(dir, INVENTORY_SERIAL_FILE);
    assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), { serial: 2 });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  });

  const bad: { name: string; text: string; error: RegExp }[] = [
    {
      name: 'not JSON',
      text: '{',
      error: /sextant-inventory\.json: not valid JSON: expected \{"serial": N\}/,
    },
    { name: 'a string serial', text: '{"serial":"3"}', error: /"serial": expected a non-negative integer/ },
    { name: 'a negative serial', text: '{"serial":-1}', error: /"serial": expected a non-negative integer/ },
    { name: 'a fraction', text: '{"serial":1.5}', error: /"serial": expected a non-negative integer/ },
    { name: 'another field', text: '{"serial":1,"x":2}', error: /"serial": expected a non-negative integer/ },
    { name: 'a list', text: '[1]', error: /"serial": expected a non-negative integer/ },
    { name: 'null', text: 'null', error: /"serial": expected a non-negative integer/ },
  ];
  for (const b of bad) {
    it(`refuses ${b.name}, naming the file and what was expected`, async () => {
      const dir = await mkdtemp(join(root, 'bad-'));
      await writeFile(join(dir, INVENTORY_SERIAL_FILE), b.text);
      await assert.rejects(nextInventorySerial(dir), b.error);
      assert.equal(await readFile(join(dir, INVENTORY_SERIAL_FILE), 'utf8'), b.text, 'left as it was');
    });
  }
});
