// sextant init [--force] [--endpoint host:port] [--timeout S]

import { formatEndpoint } from '../../common/net.js';
import { loadConfig } from '../config/file.js';
import { assertNotInitialized } from '../init/may-init.js';
import type { Backends, InitOptions } from './backends.js';
import { defineCommand, endpointOption, parsePositiveSeconds } from './command.js';
import type { CommandContext } from './context.js';

const NAME = 'init';

/** The checks that need no node: a valid config and (unless --force) a workspace without a cluster. */
export async function init(ctx: CommandContext, options: InitOptions, backends: Backends): Promise<number> {
  const config = await loadConfig(ctx.workspace);
  await assertNotInitialized(ctx.workspace, options.force, 'initialize another');
  let endpoint = options.endpoint;
  if (endpoint !== undefined) {
    endpoint = formatEndpoint(endpointOption(endpoint, config.initPort, NAME));
  }
  return backends.runInit(ctx, { ...options, ...(endpoint !== undefined ? { endpoint } : {}) });
}

export const initCommand = defineCommand<InitOptions>({
  path: ['init'],
  summary: 'initialize the cluster on its first control-plane node',
  usage: 'sextant init [--force] [--endpoint host:port] [--timeout S]',
  help: [
    "Creates the master secret unless present, where the config's kms names: kms: file keeps it in",
    'sextant-mastersecret.json; a transit+https:// or pkcs11: kms keeps only its copy wrapped by that key, in',
    'sextant-mastersecret.wrapped.json, and the CLI unwraps it in memory (credentials from BAO_TOKEN or',
    'VAULT_TOKEN, SEXTANT_KMS_TOKEN_FILE, SEXTANT_PKCS11_PIN or SEXTANT_PKCS11_PIN_FILE; never the config).',
    "Then attests the first control-plane node against the config's measurements, sends it the init request,",
    'and writes sextant-admin.conf and sextant-state.yaml. Refuses a workspace that already holds an',
    'initialized cluster.',
    '',
    '  --endpoint host:port  the node to initialize (default: the first control plane; port defaults to initPort)',
    '  --timeout S           give up after S seconds (reaching the node and the init itself)',
    '  --force               initialize even though this workspace already holds a cluster',
  ].join('\n'),
  options: {
    force: { type: 'boolean' },
    endpoint: { type: 'string' },
    timeout: { type: 'string' },
  },
  maxPositionals: 0,
  parse: ({ values }) => {
    const out: InitOptions = { force: values.force === true };
    if (typeof values.endpoint === 'string') {
      // the port may come from the config, checked again by init()
      endpointOption(values.endpoint, 1, NAME);
      out.endpoint = values.endpoint;
    }
    if (typeof values.timeout === 'string')
      out.timeoutSeconds = parsePositiveSeconds(values.timeout, '--timeout', NAME);
    return out;
  },
  run: init,
});
