// sextant create

import { deriveOwnerSeed } from '../../common/contracts/owner.js';
import { loadConfig } from '../config/file.js';
import { resolveImageDir } from '../config/resolve.js';
import { initSecretHash, loadOrCreateInitSecret } from '../workspace/init-secret.js';
import { nextInventorySerial } from '../workspace/inventory-serial.js';
import { assertNotInitialized } from '../workspace/workspace.js';
import type { Backends, ProviderNodeSpec } from './backends.js';
import { defineCommand } from './command.js';
import type { CommandContext } from './context.js';

/** Node names follow the cluster name, so two clusters' consoles and logs never mix. */
export function nodeSpecs(name: string, controlPlanes: number, workers: number): ProviderNodeSpec[] {
  return [
    ...Array.from({ length: controlPlanes }, (_, i) => ({
      name: `${name}-cp-${i}`,
      role: 'control-plane' as const,
    })),
    ...Array.from({ length: workers }, (_, i) => ({ name: `${name}-worker-${i}`, role: 'worker' as const })),
  ];
}

export async function create(ctx: CommandContext, backends: Backends): Promise<number> {
  const config = await loadConfig(ctx.workspace);
  await assertNotInitialized(ctx.workspace, false, 'create nodes for another cluster');
  const { secret } = await loadOrCreateInitSecret(ctx.workspace);
  const provider = await backends.provider('qemu');
  const { nodes } = await provider.createNodes(ctx.workspace, {
    config,
    imageDir: resolveImageDir(ctx.workspace, config, ctx.env),
    nodes: nodeSpecs(config.name, config.nodes.controlPlanes, config.nodes.workers),
    initSecretHash: initSecretHash(secret),
    ownerSeed: deriveOwnerSeed(secret),
    inventorySerial: await nextInventorySerial(ctx.workspace),
    onProgress: (m) => ctx.progress(m),
  });
  for (const n of nodes) ctx.stdout.write(`${n.name}\t${n.role}\t${n.address}\n`);
  ctx.stderr.write('nodes are up; next: sextant init\n');
  return 0;
}

export const createCommand = defineCommand<Record<string, never>>({
  path: ['create'],
  summary: 'boot the nodes of sextant-conf.yaml',
  usage: 'sextant create',
  help: [
    'Boots the control planes and workers of sextant-conf.yaml with the configured provider (QEMU VMs with',
    'OVMF and one swtpm each), serves each its instance metadata (role, init-secret hash, peers) and writes the',
    "provider's artifacts (consoles, TPM state, its EK CA) under <workspace>/qemu/. Creates",
    'sextant-initsecret.json (0600) unless present, and signs the inventory with the next serial of',
    'sextant-inventory.json. Prints one line per node: name, role, address.',
  ].join('\n'),
  options: {},
  maxPositionals: 0,
  parse: () => ({}),
  run: (ctx, _options, backends) => create(ctx, backends),
});
