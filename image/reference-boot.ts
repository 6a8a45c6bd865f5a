// Reference boot for the image's expected measurements: boots the image exactly as the QEMU provider does
// (createNodes: OVMF, q35, 1 vCPU, 2048 MiB, one manufactured swtpm each) as TWO nodes with different names,
// MACs, addresses and TPMs, reads the SHA-256 PCRs each logged at boot (SEXTANT-PCRS, before the agent runs),
// and writes measurements.json: a PCR is enforced when it is a boot-chain PCR and both nodes agree on it;
// a boot-chain PCR that differs between two nodes of the same image is per-VM and only warned about.
// Usage: tsx image/reference-boot.ts <imageDir>    (root: it creates a network namespace)
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createNodes, terminateNodes, waitForConsole } from '../cli/provider/qemu/index.js';

const imageDir = resolve(process.argv[2] ?? 'image/build/current');
const ws = mkdtempSync(join(tmpdir(), 'sextant-measure-'));
const log = (m: string) => process.stderr.write(`image-measurements: ${m}\n`);
const BOOT_CHAIN = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14];

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
  const seen: Pcrs[] = await Promise.all(
    cluster.nodes.map(async (n) => {
      const m = await waitForConsole(n.name, n.consoleLog, /SEXTANT-PCRS \{/, 600_000, t0);
      log(`${n.name}: PCRs logged after ${m.seconds.toFixed(1)} s`);
      return JSON.parse(m.line.slice(m.line.indexOf('{'))) as Pcrs;
    }),
  );
  const [a, b] = seen as [Pcrs, Pcrs];
  const measurements: Record<string, { expected: string; warnOnly: boolean }> = {};
  for (const i of BOOT_CHAIN) {
    const k = String(i);
    const same = a[k] === b[k];
    if (!same) log(`PCR ${k} differs between two VMs of the same image (${a[k]} vs ${b[k]}): warnOnly`);
    measurements[k] = { expected: a[k] ?? '', warnOnly: !same };
  }
  // PCR 15 is the agent's: zero until a node takes its lock (then the cluster ID's extend), so never enforced here.
  measurements['15'] = { expected: '0'.repeat(64), warnOnly: true };
  result = { measurements };
} finally {
  await terminateNodes(ws);
  rmSync(ws, { recursive: true, force: true });
}
const manifest = JSON.parse(readFileSync(join(imageDir, 'manifest.json'), 'utf8')) as { image: string };
const text = `${JSON.stringify({ image: manifest.image, source: 'reference boot: OVMF + swtpm, 2 VMs, provider shape', ...result }, null, 2)}\n`;
writeFileSync(join(imageDir, 'measurements.json'), text);
process.stdout.write(text);
