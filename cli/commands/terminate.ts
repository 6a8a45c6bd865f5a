// sextant terminate [--yes]
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_FILE } from '../config/validate.js';
import { providerDir } from '../provider/qemu/nodes.js';
import type { Backends } from './backends.js';
import { defineCommand } from './command.js';
import type { CommandContext } from './context.js';
import { askOnTerminal, vmsAlive } from './mini.js';

const NAME = 'terminate';

export interface TerminateOptions {
  yes: boolean;
}

export async function terminate(
  ctx: CommandContext,
  options: TerminateOptions,
  backends: Backends,
  confirm: (question: string, command: string) => Promise<boolean> = askOnTerminal,
): Promise<number> {
  const hasProvider = existsSync(providerDir(ctx.workspace));
  if (!hasProvider && !existsSync(join(ctx.workspace, CONFIG_FILE))) {
    ctx.stderr.write(
      `sextant ${NAME}: ${ctx.workspace} is not a Sextant workspace (no ${CONFIG_FILE}, no qemu/): nothing stopped\n`,
    );
    return 1;
  }
  if (!hasProvider) {
    ctx.stderr.write('no nodes of this workspace are running (no qemu/): nothing to stop\n');
    return 0;
  }
  const vms = vmsAlive(ctx.workspace);
  if (
    !options.yes &&
    !(await confirm(
      `stop ${vms.alive} VM(s) of ${ctx.workspace} and delete their disks and TPM state (qemu/)? [y/N] `,
      NAME,
    ))
  ) {
    ctx.stderr.write('nothing stopped\n');
    return 1;
  }
  const provider = await backends.provider('qemu');
  await provider.terminateNodes(ctx.workspace, (m) => ctx.progress(m));
  ctx.stderr.write(
    `stopped ${vms.alive} VM(s) (of ${vms.total} created) and removed qemu/; the workspace files (config, secrets, state, kubeconfig) stay\n`,
  );
  return 0;
}

export const terminateCommand = defineCommand<TerminateOptions>({
  path: ['terminate'],
  summary: "stop every node of the workspace and remove the provider's artifacts",
  usage: 'sextant terminate [--yes]',
  help: [
    'Stops every VM, swtpm and helper that "sextant create" started for this workspace, deletes its network',
    'namespace and <workspace>/qemu/, after asking (unless --yes). The workspace files (config, secrets, state,',
    'kubeconfig) stay. Refuses a directory that is not a workspace; with nothing running it says so and succeeds.',
    '',
    '  --yes   do not ask',
  ].join('\n'),
  options: { yes: { type: 'boolean', short: 'y' } },
  maxPositionals: 0,
  parse: ({ values }) => ({ yes: values.yes === true }),
  run: (ctx, options, backends) => terminate(ctx, options, backends),
});
