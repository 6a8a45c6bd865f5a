// Reference boot for the image's expected measurements: boots the image exactly as the QEMU provider does
// (createNodes with its default shape: OVMF, q35, 2 vCPUs, 3072 MiB, one manufactured swtpm each) as TWO nodes with different names,
// MACs, addresses and TPMs, reads the SHA-256 PCRs and boot event log each logged at boot (SEXTANT-PCRS,
// SEXTANT-EVENTLOG, before the agent runs), and writes measurements.json through the one policy
// (attestation/reference-measurements.ts): every required boot-chain PCR enforced; one that differs between the
// two nodes fails the build, naming the PCR and the differing events. Only PCRs 1 and 10 are left out (documented).
// Usage: tsx image/reference-boot.ts <imageDir>    (root: it creates a network namespace)
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type ReferenceBoot, referenceMeasurements } from '../attestation/reference-measurements.js';
import { createNodes, terminateNodes, waitForConsole } from '../cli/provider/qemu/index.js';

const imageDir = resolve(process.argv[2] ?? 'image/build/current');
const ws = mkdtempSync(join(tmpdir(), 'sextant-measure-'));
const log = (m: string) => process.stderr.write(`image-measurements: ${m}\n`);

type Pcrs = Record<string, string>;
let result: { measurements: Record<string, { expected: string; warnOnly: boolean }> } | undefined;
try {
  const t0 = Date.now();
  const cluster = await createNodes(ws, {
    imageDir,
    nodes: [
      { name: 'reference-a', role: 'control-plane' },
      { name: 'reference-b', role: 'worker' },
    ],
    initSecretHash: '0'.repeat(64),
    waitForAgent: false,
    onProgress: log,
  });
  const seen: ReferenceBoot[] = await Promise.all(
    cluster.nodes.map(async (n) => {
      const m = await waitForConsole(n.name, n.consoleLog, /SEXTANT-PCRS \{/, 600_000, t0);
      log(`${n.name}: PCRs logged after ${m.seconds.toFixed(1)} s`);
      const pcrs = JSON.parse(m.line.slice(m.line.indexOf('{'))) as Pcrs;
      // The boot log names the events behind a PCR that differs; an image without the line still gets PCRs.
      const logLine = /SEXTANT-EVENTLOG ([A-Za-z0-9+/=]+)/.exec(readFileSync(n.consoleLog, 'utf8'));
      return { name: n.name, pcrs, ...(logLine?.[1] ? { eventLog: Buffer.from(logLine[1], 'base64') } : {}) };
    }),
  );
  const [a, b] = seen as [ReferenceBoot, ReferenceBoot];
  // PCR 15 is the agent's (zero at join, the cluster's value after): the JoinService and CLI check it themselves.
  result = { measurements: referenceMeasurements(a, b, log) };
} finally {
  await terminateNodes(ws);
  rmSync(ws, { recursive: true, force: true });
}
const manifest = JSON.parse(readFileSync(join(imageDir, 'manifest.json'), 'utf8')) as { image: string };
const text = `${JSON.stringify({ image: manifest.image, source: 'reference boot: OVMF + swtpm, 2 VMs, provider shape', ...result }, null, 2)}\n`;
writeFileSync(join(imageDir, 'measurements.json'), text);
process.stdout.write(text);
