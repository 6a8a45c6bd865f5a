// The real backends the commands run with: cli/main.ts passes these; tests pass fakes.
import { join, resolve } from 'node:path';
import type { Backends, NodeProvider } from '../commands/backends.js';
import { RELEASE_COMPONENTS_DIR } from '../release/release.js';
import { runInit } from './init.js';
import { statusProbes } from './status.js';
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
        inventorySerial: spec.inventorySerial,
        joinServicePort: spec.config.joinServicePort,
        subnet: q.subnet,
        ...(q.release !== undefined
          ? { releaseComponents: join(resolve(workspaceDir, q.release), RELEASE_COMPONENTS_DIR) }
          : {}),
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
  return { runInit, runVerify, statusProbes, provider: () => qemuProvider() };
}
