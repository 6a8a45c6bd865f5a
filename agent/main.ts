#!/usr/bin/env node
import { pathToFileURL } from 'node:url';
import { run } from './run.js';

/**
 * sextant-agent: the first service of a Sextant node. Runs until stopped; on a failure to start it exits
 * non-zero with a one-line reason (systemd restarts it, and the journal holds the line).
 */
export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(
      'usage: sextant-agent [--print-measurements]\n  config: $SEXTANT_AGENT_CONFIG (default /etc/sextant/agent.json)\n',
    );
    return 0;
  }
  if (argv.includes('--print-measurements')) {
    const { printMeasurements } = await import('./measurements-command.js');
    return printMeasurements();
  }
  const abort = new AbortController();
  let agent: Awaited<ReturnType<typeof run>>;
  try {
    agent = await run(process.env, abort.signal);
  } catch (err) {
    process.stderr.write(`sextant-agent: ${(err as Error).message}\n`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve());
  });
  abort.abort();
  await agent.stop();
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((code) => process.exit(code));
}
