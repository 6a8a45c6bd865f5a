// QEMU provider: nodes as local VMs under TCG with measured boot and one swtpm each.

export { createNodes, terminateNodes } from './nodes.js';

export { waitForConsole } from './vm.js';
