// The inventory floor survives a restart: an older inventory put back into the metadata while the agent is down is
// refused after it, and a floor file that was edited, or removed once nodes were admitted, stops the start.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ADMISSIONS_FILE } from '../../../agent/joinservice/admissions.js';
import { openInventorySource } from '../../../agent/joinservice/inventory.js';
import { SerialFloor } from '../../../agent/joinservice/serial-floor.js';
import { statePath } from '../../../agent/lifecycle/layout.js';
import {
  deriveOwnerSeed,
  type InventoryNode,
  type SignedInventory,
  signInventory,
} from '../../../common/contracts/owner.js';
import { recordingLog } from '../../harness/recording-log.js';
import { withX, X_EK } from './inventories.js';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'sextant-inventory-floor-'));
});
after(() => rm(root, { recursive: true, force: true }));

const macKey = randomBytes(32);
const seed = deriveOwnerSeed(randomBytes(32));
const V1 = signInventory(withX('control-plane'), seed, 1);
const V2 = signInventory(withX('worker'), seed, 2);

/** One JoinService start on `stateDir` whose metadata carries `inventory`, the way agent/main.ts opens it. */
const start = (
  stateDir: string,
  inventory: SignedInventory | undefined,
  log = recordingLog(),
  key = macKey,
) => openInventorySource({ stateDir, read: async () => inventory, ownerSeed: seed, macKey: key, log });

const roleOfX = async (source: () => Promise<{ byEk(ek: string): InventoryNode | undefined }>) =>
  (await source()).byEk(X_EK)?.role ?? 'unlisted';

/** A state directory whose JoinService took v1, then v2 (X demoted), admitted a node, and stopped. */
async function tookV2(name: string): Promise<string> {
  const stateDir = join(root, name);
  let current: SignedInventory = V1;
  const source = await openInventorySource({
    stateDir,
    read: async () => current,
    ownerSeed: seed,
    macKey,
    log: recordingLog(),
  });
  assert.equal(await roleOfX(source), 'control-plane');
  current = V2;
  assert.equal(await roleOfX(source), 'worker');
  await mkdir(statePath(stateDir, 'joinService'), { recursive: true });
  await writeFile(join(statePath(stateDir, 'joinService'), ADMISSIONS_FILE), '{"format":2,"admissions":{}}');
  return stateDir;
}

describe('openInventorySource', () => {
  it('a first start writes a 0600 floor; taking v2 keeps it and raises the floor to 2', async () => {
    const stateDir = await tookV2('first');
    const floor = statePath(stateDir, 'inventoryFloor');
    assert.equal((await stat(floor)).mode & 0o777, 0o600);
    assert.equal(JSON.parse(await readFile(floor, 'utf8')).serial, 2);
    assert.deepEqual(JSON.parse(await readFile(statePath(stateDir, 'inventory'), 'utf8')), V2);
  });

  it('a restart with v1 put back into the metadata refuses it: X keeps the worker role of v2', async () => {
    const stateDir = await tookV2('restart');
    const log = recordingLog();
    const source = await start(stateDir, V1, log);
    assert.equal(await roleOfX(source), 'worker');
    assert.ok(
      log.lines.some((l) => /refused.*its serial 1 is below serial 2/.test(l)),
      log.lines.join('\n'),
    );
    assert.equal(await roleOfX(await start(stateDir, V2)), 'worker', 'v2 itself is still taken');
  });

  const kept: { name: string; tamper: (stateDir: string) => Promise<void>; said: RegExp }[] = [
    {
      name: 'edited (X promoted)',
      tamper: async (d) => {
        const doc = JSON.parse(await readFile(statePath(d, 'inventory'), 'utf8')) as SignedInventory;
        await writeFile(statePath(d, 'inventory'), JSON.stringify({ ...doc, nodes: withX('control-plane') }));
      },
      said: /inventory\.json: the inventory taken before the restart is ignored: .*signature does not verify/,
    },
    {
      name: 'replaced by v1',
      tamper: (d) => writeFile(statePath(d, 'inventory'), JSON.stringify(V1)),
      said: /inventory\.json: the inventory taken before the restart is ignored: its serial 1 is below the floor 2/,
    },
    {
      name: 'not an inventory',
      tamper: (d) => writeFile(statePath(d, 'inventory'), '{"nodes": []}'),
      said: /inventory\.json: the inventory taken before the restart is ignored: .*owner/,
    },
  ];
  for (const k of kept) {
    it(`the inventory kept on disk ${k.name}: ignored, said, and X is no control plane`, async () => {
      const stateDir = await tookV2(`kept-${k.name.replace(/\W+/g, '-')}`);
      await k.tamper(stateDir);
      const log = recordingLog();
      const source = await start(stateDir, undefined, log);
      assert.equal(await roleOfX(source), 'unlisted');
      assert.ok(
        log.lines.some((l) => k.said.test(l)),
        log.lines.join('\n'),
      );
    });
  }

  const refusals: { name: string; tamper: (stateDir: string) => Promise<void>; error: RegExp }[] = [
    {
      name: 'the floor edited down',
      tamper: async (d) => {
        const path = statePath(d, 'inventoryFloor');
        const doc = JSON.parse(await readFile(path, 'utf8'));
        await writeFile(path, JSON.stringify({ ...doc, serial: 0 }));
      },
      error: /inventory-floor\.json: inventory serial floor: its MAC does not verify/,
    },
    {
      name: 'the floor removed once nodes were admitted',
      tamper: (d) => rm(statePath(d, 'inventoryFloor')),
      error: /inventory-floor\.json: the inventory serial floor is missing beside .*admissions\.json/,
    },
    {
      name: 'the floor removed before any admission, with the inventory taken kept',
      tamper: async (d) => {
        await rm(join(statePath(d, 'joinService'), ADMISSIONS_FILE));
        await rm(statePath(d, 'inventoryFloor'));
      },
      error: /inventory-floor\.json: the inventory serial floor is missing beside .*inventory\.json/,
    },
    {
      name: 'the measurements floor (same key, another kind) copied in its place',
      tamper: async (d) => {
        const other = await SerialFloor.open(statePath(d, 'measurementsFloor'), 'measurements', macKey);
        await other.raise(1);
        await copyFile(statePath(d, 'measurementsFloor'), statePath(d, 'inventoryFloor'));
      },
      error: /inventory serial floor: its MAC does not verify/,
    },
    {
      name: 'not a floor file',
      tamper: (d) => writeFile(statePath(d, 'inventoryFloor'), '{"serial": "2"}'),
      error: /inventory-floor\.json: inventory serial floor: .*serial/,
    },
  ];
  for (const r of refusals) {
    it(`refuses to start: ${r.name}, naming the file`, async () => {
      const stateDir = await tookV2(r.name.replace(/\W+/g, '-'));
      await r.tamper(stateDir);
      await assert.rejects(start(stateDir, V1), r.error);
    });
  }

  it("a joining control plane's floor starts at its ticket's serial: v1 in its metadata is refused", async () => {
    const stateDir = join(root, 'joined');
    const log = recordingLog();
    const source = await openInventorySource({
      stateDir,
      read: async () => V1,
      ownerSeed: seed,
      macKey,
      log,
      atLeast: 2,
    });
    assert.equal(await roleOfX(source), 'unlisted');
    assert.ok(
      log.lines.some((l) => /its serial 1 is below serial 2/.test(l)),
      log.lines.join('\n'),
    );
    assert.equal(JSON.parse(await readFile(statePath(stateDir, 'inventoryFloor'), 'utf8')).serial, 2);
  });

  it("another cluster's floor (another MAC key) refuses the start", async () => {
    const stateDir = await tookV2('other-key');
    await assert.rejects(start(stateDir, V2, recordingLog(), randomBytes(32)), /MAC does not verify/);
  });
});
