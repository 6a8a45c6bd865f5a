// QEMU provider: nodes as local VMs under TCG with measured boot and one swtpm each.

export type { VmNetwork } from './network.js';
export { networkFor } from './network.js';
export type {
  QemuCluster,
  QemuClusterSpec,
  QemuNode,
  QemuNodeSpec,
} from './nodes.js';
export { createNodes, providerDir, READY_MARKER, terminateNodes } from './nodes.js';
export { manufactureTpm, readLocalCa, startSwtpm } from './swtpm.js';
export type { BootMode, ConsoleMatch, VmOptions } from './vm.js';
export { powerDown, qemuArgs, startVm, waitForConsole } from './vm.js';
