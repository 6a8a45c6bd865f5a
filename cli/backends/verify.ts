// `sextant verify`: attest one node and say what it showed. `attestEndpoint` is the one path every command that
// attests a node for the operator takes (verify, status).
import {
  AttestedChannelError,
  type PeerVerifier,
  type VerifiedAttestation,
} from '../../attestation/atls/index.js';
import { AttestationError } from '../../attestation/errors.js';
import { REQUIRED_PCRS } from '../../attestation/measurement-policy.js';
import { type Endpoint, formatEndpoint, parseEndpoint } from '../../common/net.js';
import type { VerifyOptions } from '../commands/backends.js';
import type { CommandContext } from '../commands/context.js';
import { writeOutput } from '../commands/output.js';
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

export type AttestOutcome =
  | { verified: true; attestation: VerifiedAttestation }
  | { verified: false; reason: string; warnings: string[] };

/**
 * Attests the node at `endpoint` against `verifier`. Not verified: no agent there, a refused attestation, or a
 * boot-chain PCR that differs (never "verified", even when an insecure set only warns about it).
 */
export async function attestEndpoint(
  endpoint: Endpoint,
  verifier: PeerVerifier,
  initPort: number,
): Promise<AttestOutcome> {
  const target = formatEndpoint(endpoint);
  try {
    const attestation = await verifyNode(endpoint, verifier);
    const differing = attestation.warnings
      .map(warnedPcr)
      .filter((p): p is number => p !== undefined && REQUIRED_PCRS.includes(p));
    if (differing.length > 0) {
      return {
        verified: false,
        reason: `${target}: boot-chain PCR(s) ${differing.join(', ')} differ from the measurements`,
        warnings: attestation.warnings,
      };
    }
    return { verified: true, attestation };
  } catch (err) {
    if (err instanceof AttestedChannelError) {
      return { verified: false, reason: noAgentMessage(err, initPort) ?? err.message, warnings: [] };
    }
    throw err;
  }
}

/** What `verify -o json` prints; the text form says the same line by line. */
export interface VerifyReport {
  endpoint: string | null;
  verified: boolean;
  /** Why not, when not verified. */
  reason?: string;
  warnings: string[];
  akName?: string;
  ekCertificateSha256?: string;
  /** What the operator's inventory and the JoinService know the node by. */
  ekPublicKeySha256?: string;
  /** Quoted PCR index → SHA-256 value, hex. */
  pcrs?: Record<string, string>;
}

function verifyText(r: VerifyReport): string {
  const lines = [
    `verified: ${r.endpoint}`,
    `AK name: ${r.akName}`,
    `EK certificate SHA-256: ${r.ekCertificateSha256}`,
    `EK public key SHA-256: ${r.ekPublicKeySha256}`,
    ...Object.entries(r.pcrs ?? {}).map(([i, v]) => `PCR ${i.padStart(2)}: ${v}`),
  ];
  return `${lines.join('\n')}\n`;
}

export async function runVerify(ctx: CommandContext, options: VerifyOptions): Promise<number> {
  const format = options.output ?? 'text';
  const notVerified = (endpoint: string | null, reason: string, warnings: string[] = []): number => {
    ctx.stderr.write(`not verified: ${reason}\n`);
    if (format === 'json')
      writeOutput(ctx.stdout, format, { endpoint, verified: false, reason, warnings }, String);
    return 1;
  };
  const config = await loadConfig(ctx.workspace);
  let verifier: PeerVerifier;
  try {
    ({ verifier } = await configuredVerifier(ctx.workspace, config, {
      insecure: options.insecureMeasurements === true,
      warn: (line) => ctx.stderr.write(`${line}\n`),
    }));
  } catch (err) {
    if (err instanceof AttestationError || err instanceof ConfigError)
      return notVerified(options.endpoint ?? null, err.message);
    throw err;
  }
  let target: string;
  try {
    target = options.endpoint ?? (await firstControlPlane(ctx.workspace, config.initPort));
  } catch (err) {
    return notVerified(null, (err as Error).message);
  }
  // the command checked it already
  const outcome = await attestEndpoint(parseEndpoint(target, config.initPort), verifier, config.initPort);
  const warnings = outcome.verified ? outcome.attestation.warnings : outcome.warnings;
  for (const w of warnings) ctx.stderr.write(`warning: ${w}\n`);
  if (!outcome.verified) return notVerified(target, outcome.reason, warnings);
  const a = outcome.attestation;
  const report: VerifyReport = {
    endpoint: target,
    verified: true,
    warnings,
    akName: a.akName.toString('hex'),
    ekCertificateSha256: a.ekCertificateHash.toString('hex'),
    ekPublicKeySha256: a.ekPublicHash.toString('hex'),
    pcrs: Object.fromEntries(
      [...a.pcrs].sort(([x], [y]) => x - y).map(([i, v]) => [String(i), v.toString('hex')]),
    ),
  };
  writeOutput(ctx.stdout, format, report, verifyText);
  return 0;
}
