// sextant status [--insecure-measurements] [-o json]
import { loadConfig } from '../config/file.js';
import { collectStatus, statusExitCode, statusText } from '../status/report.js';
import { loadState } from '../workspace/state.js';
import type { Backends } from './backends.js';
import { defineCommand } from './command.js';
import type { CommandContext } from './context.js';
import { OUTPUT_HELP, OUTPUT_OPTION, type OutputFormat, parseOutputFormat, writeOutput } from './output.js';

const NAME = 'status';

export interface StatusCommandOptions {
  insecureMeasurements: boolean;
  output: OutputFormat;
}

export async function status(
  ctx: CommandContext,
  options: StatusCommandOptions,
  backends: Backends,
): Promise<number> {
  const config = await loadConfig(ctx.workspace);
  const state = await loadState(ctx.workspace);
  const probes = await backends.statusProbes(ctx, {
    ...(options.insecureMeasurements ? { insecureMeasurements: true } : {}),
  });
  const report = await collectStatus({ cluster: config.name, state, probes });
  writeOutput(ctx.stdout, options.output, report, statusText);
  return statusExitCode(report);
}

export const statusCommand = defineCommand<StatusCommandOptions>({
  path: ['status'],
  summary: 'every node of the workspace: role, address, attested, image, Kubernetes Ready',
  usage: 'sextant status [--insecure-measurements] [-o json]',
  help: [
    'Lists every node of the workspace with its role and address, attests each over attested TLS as',
    '"sextant verify" does (boot chain against the measurements; once initialized, PCR 15 = the cluster ID),',
    'shows the image version the signed measurements it matched name, and whether Kubernetes lists it Ready',
    "(GET /api/v1/nodes with the workspace's sextant-admin.conf), with the control-plane endpoint.",
    'A node that does not answer is a row saying so. Exits 1 when any node fails to attest.',
    '',
    '  --insecure-measurements   accept unsigned (or inline) or weaker measurements, each weakness printed INSECURE',
    OUTPUT_HELP,
  ].join('\n'),
  options: { 'insecure-measurements': { type: 'boolean' }, ...OUTPUT_OPTION },
  maxPositionals: 0,
  parse: ({ values }) => ({
    insecureMeasurements: values['insecure-measurements'] === true,
    output: parseOutputFormat(values.output, NAME),
  }),
  run: status,
});
