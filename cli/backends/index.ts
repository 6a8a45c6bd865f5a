// The real backends the commands run with: cli/main.ts passes these; tests pass fakes.
import type { Backends, NodeProvider } from '../commands/backends.js';
import { runInit } from './init.js';
import { runVerify } from './verify.js';

async function qemuProvider(): Promise<NodeProvider> {
  const qemu = await import('../provider/qemu/index.js');
  return {
    async createNodes(workspaceDir, spec) {
      const q = spec.config.provider.qemu;
      const cluster = await qemu.createNodes(workspaceDir, {
        imageDir: spec.imageDir,
        nodes: spec.nodes,
        initSecretHash: spec.initSecretHash,
        ownerSeed: spec.ownerSeed,
        joinServicePort: spec.config.joinServicePort,
        cpus: q.vcpus,
        memoryMiB: q.memoryMiB,
        onProgress: spec.onProgress,
      });
      return { nodes: cluster.nodes };
    },
    terminateNodes: (workspaceDir, onProgress) => qemu.terminateNodes(workspaceDir, onProgress),
  };
}

export function liveBackends(): Backends {
  return { runInit, runVerify, provider: () => qemuProvider() };
}
