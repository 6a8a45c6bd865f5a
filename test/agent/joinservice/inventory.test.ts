// Which inventory the JoinService admits by: only one the cluster's own owner key signed; anything else leaves every
// node unlisted and says why, once per distinct inventory rather than once per join.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { inventorySource } from '../../../agent/joinservice/inventory.js';
import { deriveOwnerSeed, type InventoryNode, signInventory } from '../../../common/contracts/owner.js';
import { recordingLog } from '../../harness/recording-log.js';

const NODES: InventoryNode[] = [{ name: 'cp-0', role: 'control-plane', eks: ['c0'.repeat(32)] }];
const seed = deriveOwnerSeed(randomBytes(32));
const otherSeed = deriveOwnerSeed(randomBytes(32));

describe('inventorySource', () => {
  const cases: {
    name: string;
    read?: () => Promise<ReturnType<typeof signInventory> | undefined>;
    ownerSeed?: Buffer;
    size: number;
    said?: RegExp;
  }[] = [
    {
      name: 'signed by the cluster owner key: its nodes',
      read: async () => signInventory(NODES, seed),
      ownerSeed: seed,
      size: 1,
    },
    {
      name: 'signed by another key: none',
      read: async () => signInventory(NODES, otherSeed),
      ownerSeed: seed,
      size: 0,
      said: /operator inventory refused, every node is unlisted/,
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
      read: async () => signInventory(NODES, seed),
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
