// Which inventory the JoinService admits by: only one the cluster's own owner key signed for this cluster, never one
// older than an inventory already taken; anything else keeps the last one taken (none at first: every node
// unlisted) and says why, once per distinct inventory rather than once per join.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { inventorySource, withInventorySerial } from '../../../agent/joinservice/inventory.js';
import {
  deriveOwnerSeed,
  type InventoryNode,
  ownerKeyId,
  ownerPublicKeyText,
  parseOwnerPublicKey,
  type SignedInventory,
  signInventory,
} from '../../../common/contracts/owner.js';
import { recordingLog } from '../../harness/recording-log.js';
import { withX, X_EK } from './inventories.js';

const NODES: InventoryNode[] = [{ name: 'cp-0', role: 'control-plane', eks: ['c0'.repeat(32)] }];
const seed = deriveOwnerSeed(randomBytes(32));
const otherSeed = deriveOwnerSeed(randomBytes(32));
const ownerOf = (s: Buffer) => ownerKeyId(parseOwnerPublicKey(ownerPublicKeyText(s)));

describe('inventorySource', () => {
  const cases: {
    name: string;
    read?: () => Promise<SignedInventory | undefined>;
    ownerSeed?: Buffer;
    size: number;
    said?: RegExp;
  }[] = [
    {
      name: 'signed by the cluster owner key: its nodes',
      read: async () => signInventory(NODES, seed, 1),
      ownerSeed: seed,
      size: 1,
    },
    {
      name: "another cluster's inventory: none, naming both owners",
      read: async () => signInventory(NODES, otherSeed, 1),
      ownerSeed: seed,
      size: 0,
      said: new RegExp(
        `operator inventory refused, every node is unlisted .*owner ${ownerOf(otherSeed)}, this cluster's owner is ${ownerOf(seed)}`,
      ),
    },
    {
      name: 'a serial altered after signing: none',
      read: async () => ({ ...signInventory(NODES, seed, 1), serial: 9 }),
      ownerSeed: seed,
      size: 0,
      said: /operator inventory refused.*signature does not verify/,
    },
    {
      name: 'no inventory in the metadata: none',
      read: async () => undefined,
      ownerSeed: seed,
      size: 0,
      said: /no operator inventory/,
    },
    {
      name: 'no owner key in the cluster secrets: none',
      read: async () => signInventory(NODES, seed, 1),
      size: 0,
      said: /hold no owner key/,
    },
    {
      name: 'metadata that cannot be read: none',
      read: async () => {
        throw new Error('ECONNREFUSED');
      },
      ownerSeed: seed,
      size: 0,
      said: /cannot read the metadata: ECONNREFUSED/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const log = recordingLog();
      const source = inventorySource(c.read, c.ownerSeed, log);
      assert.equal((await source()).size, c.size);
      assert.equal((await source()).size, c.size);
      if (c.said) {
        const said = c.said;
        // verified once per distinct inventory: the second join says nothing new
        const count = log.lines.filter((l) => said.test(l)).length;
        assert.ok(count >= 1, log.lines.join('\n'));
        if (!/cannot read/.test(said.source)) assert.equal(count, 1);
      }
    });
  }
});

// ---- serials: what the host puts into the metadata over time, and the role node X has at each join ----------------

const V1 = signInventory(withX('control-plane'), seed, 1);
const V2 = signInventory(withX('worker'), seed, 2);
const V3 = signInventory(withX('control-plane'), seed, 3);
const WITHOUT_X = signInventory([{ name: 'cp-0', role: 'control-plane', eks: ['c0'.repeat(32)] }], seed, 3);

describe('inventorySource: serials', () => {
  const cases: {
    name: string;
    /** The metadata's inventory at each join, and X's role then ('unlisted': not in the inventory taken). */
    joins: [SignedInventory | undefined, InventoryNode['role'] | 'unlisted'][];
    said?: RegExp;
  }[] = [
    {
      name: 'v1 (X control plane), v2 (X demoted), v1 put back: refused, X keeps the worker role of v2',
      joins: [
        [V1, 'control-plane'],
        [V2, 'worker'],
        [V1, 'worker'],
        [V1, 'worker'],
      ],
      said: /refused, keeping inventory serial 2: its serial 1 is below serial 2 this JoinService has taken/,
    },
    {
      name: 'X removed in v3, v2 put back: refused, X stays out',
      joins: [
        [V2, 'worker'],
        [WITHOUT_X, 'unlisted'],
        [V2, 'unlisted'],
      ],
      said: /its serial 2 is below serial 3/,
    },
    {
      name: 'the inventory taken out of the metadata: the last one taken stays',
      joins: [
        [V2, 'worker'],
        [undefined, 'worker'],
      ],
      said: /no operator inventory in the metadata: keeping inventory serial 2/,
    },
    {
      name: 'a newer inventory is taken: v2 then v3 promotes X',
      joins: [
        [V2, 'worker'],
        [V3, 'control-plane'],
      ],
    },
    {
      name: 'the same serial read again is taken',
      joins: [
        [V2, 'worker'],
        [V2, 'worker'],
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const log = recordingLog();
      let current: SignedInventory | undefined;
      const source = inventorySource(async () => current, seed, log);
      for (const [i, [inventory, role]] of c.joins.entries()) {
        current = inventory;
        const got = (await source()).byEk(X_EK)?.role ?? 'unlisted';
        assert.equal(got, role, `join ${i + 1}\n${log.lines.join('\n')}`);
      }
      if (c.said)
        assert.ok(
          log.lines.some((l) => c.said!.test(l)),
          log.lines.join('\n'),
        );
      else assert.ok(!log.lines.some((l) => /refused/.test(l)), log.lines.join('\n'));
    });
  }

  it('joins at once take the inventories in order: the floor ends at the highest', async () => {
    const log = recordingLog();
    const order = [V2, V1, V3, V1];
    let n = 0;
    const source = inventorySource(async () => order[n++], seed, log);
    const roles = await Promise.all(order.map(async () => (await source()).byEk(X_EK)?.role));
    assert.deepEqual(roles, ['worker', 'worker', 'control-plane', 'control-plane']);
  });
});

describe('withInventorySerial', () => {
  const cases: { name: string; file: string; serial: number; out: string }[] = [
    { name: 'none taken: the file unchanged', file: 'not JSON at all', serial: 0, out: 'not JSON at all' },
    { name: 'added', file: '{"clusterName":"c"}', serial: 3, out: '{"clusterName":"c","inventorySerial":3}' },
    { name: 'raised', file: '{"inventorySerial":2}', serial: 3, out: '{"inventorySerial":3}' },
    { name: 'never lowered', file: '{"inventorySerial":4}', serial: 3, out: '{"inventorySerial":4}' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(withInventorySerial(Buffer.from(c.file), c.serial).toString('utf8'), c.out);
    });
  }

  it('the serial of the inventory taken is what a ticket hands over', async () => {
    const source = inventorySource(async () => V2, seed, recordingLog());
    assert.equal((await source()).serial, 2);
  });
});
