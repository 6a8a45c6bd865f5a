// sextant config generate qemu [--measurements FILE] [--force]
import { access, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Measurements, parseMeasurementsFile } from '../../attestation/measurements.js';
import { configPath, saveConfig } from '../config/file.js';
import { generateQemuConfig } from '../config/generate.js';
import { CONFIG_FILE } from '../config/validate.js';
import { defineCommand } from './command.js';
import { type CommandContext, UsageError } from './context.js';

export interface ConfigGenerateOptions {
  provider: 'qemu';
  /** An image measurements file (JSON {"measurements": {...}}) whose values fill attestation.measurements. */
  measurementsFile?: string;
  force: boolean;
}

const NAME = 'config generate';
const PROVIDERS = ['qemu'] as const;

export async function configGenerate(ctx: CommandContext, options: ConfigGenerateOptions): Promise<number> {
  const target = configPath(ctx.workspace);
  if (!options.force) {
    const present = await access(target).then(
      () => true,
      () => false,
    );
    if (present) {
      ctx.stderr.write(`sextant ${NAME}: ${target} already exists; use --force to overwrite it\n`);
      return 1;
    }
  }
  let measurements: Measurements | undefined;
  if (options.measurementsFile !== undefined) {
    const file = resolve(ctx.workspace, options.measurementsFile);
    const bytes = await readFile(file).catch((err: NodeJS.ErrnoException) => {
      throw new UsageError(`--measurements: cannot read ${file} (${err.code ?? 'error'})`, NAME);
    });
    measurements = parseMeasurementsFile(bytes, file);
    if (Object.keys(measurements).length === 0) {
      throw new UsageError(`--measurements: ${file} holds no measurements`, NAME);
    }
  }
  const config = generateQemuConfig(measurements ? { measurements } : {});
  await saveConfig(ctx.workspace, config);
  ctx.stdout.write(`${target}\n`);
  if (!measurements) {
    ctx.stderr.write(
      `note: ${CONFIG_FILE} has no measurements yet; nodes cannot be verified until they are filled in ` +
        '(rerun with --measurements FILE, the file the image build writes)\n',
    );
  }
  return 0;
}

export const configGenerateCommand = defineCommand<ConfigGenerateOptions>({
  path: ['config', 'generate'],
  summary: 'write sextant-conf.yaml with defaults for a provider',
  usage: 'sextant config generate qemu [--measurements FILE] [--force]',
  help: [
    'Writes sextant-conf.yaml into the workspace with strong defaults for a local QEMU cluster',
    '(1 control plane, 1 worker, OVMF measured boot, Kubernetes and network defaults).',
    '',
    '  --measurements FILE  fill attestation.measurements from an image measurements file',
    '  --force              overwrite an existing sextant-conf.yaml',
  ].join('\n'),
  options: {
    measurements: { type: 'string' },
    force: { type: 'boolean' },
  },
  maxPositionals: 1,
  parse: ({ values, positionals }) => {
    const provider = positionals[0];
    if (provider === undefined)
      throw new UsageError(`missing provider (one of: ${PROVIDERS.join(', ')})`, NAME);
    if (!(PROVIDERS as readonly string[]).includes(provider)) {
      throw new UsageError(
        `unknown provider ${JSON.stringify(provider)} (expected one of: ${PROVIDERS.join(', ')})`,
        NAME,
      );
    }
    return {
      provider: 'qemu',
      force: values.force === true,
      ...(typeof values.measurements === 'string' ? { measurementsFile: values.measurements } : {}),
    };
  },
  run: (ctx, options) => configGenerate(ctx, options),
});
