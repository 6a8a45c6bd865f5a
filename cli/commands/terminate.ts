// sextant terminate
import type { Backends } from './backends.js';
import { defineCommand } from './command.js';
import type { CommandContext } from './context.js';

export async function terminate(ctx: CommandContext, backends: Backends): Promise<number> {
  const provider = await backends.provider('qemu');
  await provider.terminateNodes(ctx.workspace, (m) => ctx.progress(m));
  ctx.stderr.write('every node of this workspace is stopped and its provider artifacts are removed\n');
  return 0;
}

export const terminateCommand = defineCommand<Record<string, never>>({
  path: ['terminate'],
  summary: "stop every node of the workspace and remove the provider's artifacts",
  usage: 'sextant terminate',
  help: [
    'Stops every VM, swtpm and helper that "sextant create" started for this workspace, deletes its network',
    'namespace and <workspace>/qemu/. The workspace files (config, secrets, state, kubeconfig) stay. A second',
    'call finds nothing and succeeds.',
  ].join('\n'),
  options: {},
  maxPositionals: 0,
  parse: () => ({}),
  run: (ctx, _options, backends) => terminate(ctx, backends),
});
