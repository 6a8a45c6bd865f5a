// sextant verify --endpoint host:port
import { formatEndpoint } from '../../common/net.js';
import { loadConfig } from '../config/file.js';
import type { Backends, VerifyOptions } from './backends.js';
import { defineCommand, endpointOption } from './command.js';
import { type CommandContext, UsageError } from './context.js';

const NAME = 'verify';

export interface VerifyCommandOptions {
  endpoint: string;
}

export async function verify(
  ctx: CommandContext,
  options: VerifyCommandOptions,
  backends: Backends,
): Promise<number> {
  const config = await loadConfig(ctx.workspace);
  const request: VerifyOptions = {
    endpoint: formatEndpoint(endpointOption(options.endpoint, config.initPort, NAME)),
  };
  return backends.runVerify(ctx, request);
}

export const verifyCommand = defineCommand<VerifyCommandOptions>({
  path: ['verify'],
  summary: "attest a node against the config's measurements",
  usage: 'sextant verify --endpoint host:port',
  help: [
    "Connects to a node's agent over attested TLS and checks its attestation (EK chain, quote, PCRs) against",
    'the measurements in sextant-conf.yaml, printing the verdict and any PCR that differs.',
    '',
    '  --endpoint host:port  the node (port defaults to initPort)',
  ].join('\n'),
  options: { endpoint: { type: 'string' } },
  maxPositionals: 0,
  parse: ({ values }) => {
    if (typeof values.endpoint !== 'string') throw new UsageError('--endpoint host:port is required', NAME);
    endpointOption(values.endpoint, 1, NAME);
    return { endpoint: values.endpoint };
  },
  run: verify,
});
