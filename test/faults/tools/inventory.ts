// What `sextant create` hands a cluster, for fault tests on loopback: every node started through `publish` is in
// the signed inventory (by its EK), republished before each agent starts so the control plane's copy lists all.
import { type AgentNode, publishInventory } from '../../harness/agent-node.js';

export function inventoryPublisher(initSecret: Buffer): (node: AgentNode) => Promise<void> {
  const listed: AgentNode[] = [];
  let publishing: Promise<void> = Promise.resolve();
  return (node) => {
    listed.push(node);
    publishing = publishing.then(() => publishInventory(listed, initSecret));
    return publishing;
  };
}
