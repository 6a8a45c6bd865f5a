// `sextant verify`: attest one node and say what it showed.
import { AttestedChannelError } from '../../attestation/atls/index.js';
import { parseEndpoint } from '../../common/net.js';
import type { VerifyOptions } from '../commands/backends.js';
import type { CommandContext } from '../commands/context.js';
import { loadConfig } from '../config/file.js';
import { verifyNode } from '../init/init-cluster.js';
import { configuredVerifier } from './attestation.js';

export async function runVerify(ctx: CommandContext, options: VerifyOptions): Promise<number> {
  const config = await loadConfig(ctx.workspace);
  const { verifier } = await configuredVerifier(ctx.workspace, config);
  // the command checked it already
  const endpoint = parseEndpoint(options.endpoint, config.initPort);
  try {
    const attestation = await verifyNode(endpoint, verifier);
    ctx.stdout.write(`verified: ${options.endpoint}\n`);
    ctx.stdout.write(`AK name: ${attestation.akName.toString('hex')}\n`);
    ctx.stdout.write(`EK certificate SHA-256: ${attestation.ekCertificateHash.toString('hex')}\n`);
    for (const [index, value] of [...attestation.pcrs].sort(([a], [b]) => a - b)) {
      ctx.stdout.write(`PCR ${String(index).padStart(2)}: ${value.toString('hex')}\n`);
    }
    for (const w of attestation.warnings) ctx.stderr.write(`warning: ${w}\n`);
    return 0;
  } catch (err) {
    if (err instanceof AttestedChannelError) {
      ctx.stderr.write(`not verified: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
