// Every node mini up made is Ready and has a pod CIDR, asked from the host with the workspace's kubeconfig.
import assert from 'node:assert/strict';
import type { Scenario } from './scenario.js';

interface NodeList {
  items: {
    metadata: { name: string };
    spec: { podCIDR?: string };
    status: { conditions?: { type: string; status: string }[] };
  }[];
}

export const nodesReady: Scenario = {
  name: 'every node is Ready and has a pod CIDR (kubectl from the host)',
  async run(c) {
    const list = JSON.parse(await c.kubectl(['get', 'nodes', '-o', 'json'])) as NodeList;
    console.log(await c.kubectl(['get', 'nodes', '-o', 'wide']));
    for (const n of c.nodes) {
      const k = list.items.find((i) => i.metadata.name === n.name);
      assert.ok(k, `${n.name} registered`);
      assert.ok(
        k.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True'),
        `${n.name} Ready`,
      );
      assert.ok(k.spec.podCIDR, `${n.name} has a pod CIDR`);
    }
    assert.equal(list.items.length, c.config.nodes.controlPlanes + c.config.nodes.workers);
    assert.match(c.upSummary, /kubectl --kubeconfig \S+sextant-admin\.conf get nodes/);
  },
};
