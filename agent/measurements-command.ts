import { openResilientTpm } from '../native/tpm/index.js';
import { loadAgentConfig } from './config/agent-config.js';
import { createLogger } from './log/index.js';

/** The agent's first breath: open the TPM its config names, log the SHA-256 PCRs as structured lines, exit. */
export async function printMeasurements(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const log = createLogger({ identifier: 'sextant-agent' });
  let tpm: Awaited<ReturnType<typeof openResilientTpm>> | undefined;
  try {
    const config = await loadAgentConfig(env);
    // The same I/O-fault handling as the agent: one dropped command is retried on a reopened context.
    tpm = await openResilientTpm(config.tcti, { notice: (level, message) => log[level](message) });
    const pcrs = await tpm.readPcrs();
    for (const [index, value] of pcrs) log.info('pcr', { index, sha256: value.toString('hex') });
    return 0;
  } catch (err) {
    process.stderr.write(`sextant-agent: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await tpm?.close().catch(() => {});
  }
}
