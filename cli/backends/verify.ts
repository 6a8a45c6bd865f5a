// `sextant verify`: attest one node and say what it showed.
import { AttestedChannelError } from '../../attestation/atls/index.js';
import { AttestationError } from '../../attestation/errors.js';
import { REQUIRED_PCRS } from '../../attestation/measurement-policy.js';
import { parseEndpoint } from '../../common/net.js';
import type { VerifyOptions } from '../commands/backends.js';
import type { CommandContext } from '../commands/context.js';
import { loadConfig } from '../config/file.js';
import { ConfigError } from '../config/validate.js';
import { verifyNode } from '../init/init-cluster.js';
import { configuredVerifier } from './attestation.js';
import { firstControlPlane } from './first-node.js';
import { noAgentMessage } from './no-agent.js';

/** The PCR a warnOnly warning line names ("warnOnly PCR 4: expected …"). */
function warnedPcr(line: string): number | undefined {
  const m = /^warnOnly PCR (\d+):/.exec(line);
  return m ? Number(m[1]) : undefined;
}

export async function runVerify(ctx: CommandContext, options: VerifyOptions): Promise<number> {
  const config = await loadConfig(ctx.workspace);
  let verifier: Awaited<ReturnType<typeof configuredVerifier>>['verifier'];
  try {
    ({ verifier } = await configuredVerifier(ctx.workspace, config, {
      insecure: options.insecureMeasurements === true,
      warn: (line) => ctx.stderr.write(`${line}\n`),
    }));
  } catch (err) {
    if (err instanceof AttestationError || err instanceof ConfigError) {
      ctx.stderr.write(`not verified: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  let target: string;
  try {
    target = options.endpoint ?? (await firstControlPlane(ctx.workspace, config.initPort));
  } catch (err) {
    ctx.stderr.write(`not verified: ${(err as Error).message}\n`);
    return 1;
  }
  // the command checked it already
  const endpoint = parseEndpoint(target, config.initPort);
  try {
    const attestation = await verifyNode(endpoint, verifier);
    // A boot-chain PCR that differs is never "verified", even when an insecure set only warns about it.
    const differing = attestation.warnings
      .map(warnedPcr)
      .filter((p): p is number => p !== undefined && REQUIRED_PCRS.includes(p));
    for (const w of attestation.warnings) ctx.stderr.write(`warning: ${w}\n`);
    if (differing.length > 0) {
      ctx.stderr.write(
        `not verified: ${target}: boot-chain PCR(s) ${differing.join(', ')} differ from the measurements\n`,
      );
      return 1;
    }
    ctx.stdout.write(`verified: ${target}\n`);
    ctx.stdout.write(`AK name: ${attestation.akName.toString('hex')}\n`);
    ctx.stdout.write(`EK certificate SHA-256: ${attestation.ekCertificateHash.toString('hex')}\n`);
    // what the operator's inventory and the JoinService know the node by
    ctx.stdout.write(`EK public key SHA-256: ${attestation.ekPublicHash.toString('hex')}\n`);
    for (const [index, value] of [...attestation.pcrs].sort(([a], [b]) => a - b)) {
      ctx.stdout.write(`PCR ${String(index).padStart(2)}: ${value.toString('hex')}\n`);
    }
    return 0;
  } catch (err) {
    if (err instanceof AttestedChannelError) {
      ctx.stderr.write(`not verified: ${noAgentMessage(err, config.initPort) ?? err.message}\n`);
      return 1;
    }
    throw err;
  }
}
