import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMetadata } from '../../../../agent/metadata/instance-metadata.js';
import { nodeMetadata, QEMU_KUBEADM_TUNING } from '../../../../cli/provider/qemu/metadata.js';
import { deriveOwnerSeed, ownerPublicKeyText, signInventory } from '../../../../common/contracts/owner.js';

const nodes = [
  { name: 'cp-0', role: 'control-plane' as const, address: '10.0.0.10' },
  { name: 'cp-1', role: 'control-plane' as const, address: '10.0.0.11' },
  { name: 'w-0', role: 'worker' as const, address: '10.0.0.12' },
];
const input = { initSecretHash: 'ab'.repeat(32), joinServicePort: 30090 };

describe('nodeMetadata: what a QEMU node learns about itself', () => {
  const cases: { node: (typeof nodes)[number]; peers: string[]; joinEndpoints: string[] }[] = [
    { node: nodes[0]!, peers: ['10.0.0.11', '10.0.0.12'], joinEndpoints: ['10.0.0.11:30090'] },
    { node: nodes[1]!, peers: ['10.0.0.10', '10.0.0.12'], joinEndpoints: ['10.0.0.10:30090'] },
    {
      node: nodes[2]!,
      peers: ['10.0.0.10', '10.0.0.11'],
      joinEndpoints: ['10.0.0.10:30090', '10.0.0.11:30090'],
    },
  ];
  for (const c of cases) {
    it(`${c.node.name}: its name, role, address, peers and the other control planes' JoinServices`, () => {
      assert.deepEqual(nodeMetadata(c.node, nodes, input), {
        name: c.node.name,
        role: c.node.role,
        initSecretHash: input.initSecretHash,
        advertiseAddress: c.node.address,
        peers: c.peers,
        joinEndpoints: c.joinEndpoints,
        kubeadmTuning: 'qemu-tcg',
      });
    });
  }

  it("tunes kubeadm for TCG on every node, in metadata the agent's reader accepts", () => {
    assert.equal(QEMU_KUBEADM_TUNING, 'qemu-tcg');
    for (const node of nodes) {
      const written = JSON.stringify(nodeMetadata(node, nodes, input));
      assert.equal(parseMetadata('fw_cfg', written).kubeadmTuning, 'qemu-tcg');
    }
  });

  it('carries the operator commitment and the signed inventory when given', () => {
    const seed = deriveOwnerSeed(Buffer.alloc(32, 7));
    const owner = {
      owner: ownerPublicKeyText(seed),
      inventory: signInventory([{ name: 'cp-0', role: 'control-plane', eks: ['cd'.repeat(32)] }], seed, 1),
    };
    const m = nodeMetadata(nodes[0]!, nodes, { ...input, owner });
    assert.equal(m.owner, owner.owner);
    assert.deepEqual(m.inventory, owner.inventory);
  });

  it('refuses what the agent would refuse, naming the field', () => {
    assert.throws(
      () => nodeMetadata({ ...nodes[0]!, name: 'CP_0' }, nodes, input),
      /^SchemaError: name: expected a DNS label/,
    );
  });
});
