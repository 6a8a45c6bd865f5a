// sextant verify [--endpoint host:port] [--insecure-measurements] [-o json]
import { formatEndpoint } from '../../common/net.js';
import { loadConfig } from '../config/file.js';
import type { Backends, VerifyOptions } from './backends.js';
import { defineCommand, endpointOption } from './command.js';
import type { CommandContext } from './context.js';
import { OUTPUT_HELP, OUTPUT_OPTION, type OutputFormat, parseOutputFormat } from './output.js';

const NAME = 'verify';

export interface VerifyCommandOptions {
  endpoint?: string;
  insecureMeasurements: boolean;
  output: OutputFormat;
}

export async function verify(
  ctx: CommandContext,
  options: VerifyCommandOptions,
  backends: Backends,
): Promise<number> {
  const config = await loadConfig(ctx.workspace);
  const request: VerifyOptions = {
    ...(options.endpoint !== undefined
      ? { endpoint: formatEndpoint(endpointOption(options.endpoint, config.initPort, NAME)) }
      : {}),
    ...(options.insecureMeasurements ? { insecureMeasurements: true } : {}),
    output: options.output,
  };
  return backends.runVerify(ctx, request);
}

export const verifyCommand = defineCommand<VerifyCommandOptions>({
  path: ['verify'],
  summary: "attest a node against the config's measurements",
  usage: 'sextant verify [--endpoint host:port] [--insecure-measurements] [-o json]',
  help: [
    "Connects to a node's agent over attested TLS and checks its attestation (EK chain, quote, PCRs) against",
    'the measurements in sextant-conf.yaml, printing the verdict and any PCR that differs.',
    '',
    'The measurements must be signed by the pinned release key and enforce the boot chain (PCRs 0, 2-9, 11-14);',
    'measurements written inline in sextant-conf.yaml are unsigned and refused like an unsigned file.',
    '',
    '  --endpoint host:port      the node (default: the first control plane; port defaults to initPort)',
    '  --insecure-measurements   accept unsigned (or inline) or weaker measurements, each weakness printed INSECURE',
    OUTPUT_HELP,
  ].join('\n'),
  options: { endpoint: { type: 'string' }, 'insecure-measurements': { type: 'boolean' }, ...OUTPUT_OPTION },
  maxPositionals: 0,
  parse: ({ values }) => {
    const insecureMeasurements = values['insecure-measurements'] === true;
    const output = parseOutputFormat(values.output, NAME);
    if (typeof values.endpoint !== 'string') return { insecureMeasurements, output };
    endpointOption(values.endpoint, 1, NAME);
    return { endpoint: values.endpoint, insecureMeasurements, output };
  },
  run: verify,
});
