// How long `sextant version` takes to start: the built CLI (what `npm install -g .` puts on PATH) against the
// TypeScript sources through tsx (the development path), interleaved in one run so load hits both alike.
// Run: npm run build && npx tsx test/bench/cli-start.bench.ts [rounds]   (default 10; medians)
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const ROUNDS = Math.max(5, Number(process.argv[2] ?? 10));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

if (!existsSync('dist/cli/main.js')) {
  console.error('cli-start: dist/cli/main.js missing; run "npm run build" first');
  process.exit(1);
}

const ways: [string, string, string[]][] = [
  ['built: node dist/cli/main.js', process.execPath, ['dist/cli/main.js', 'version']],
  [
    'sources: node --import tsx cli/main.ts (baseline)',
    process.execPath,
    ['--import', 'tsx', 'cli/main.ts', 'version'],
  ],
];
const samples = new Map<string, number[]>(ways.map(([name]) => [name, []]));
for (let round = 0; round < ROUNDS + 1; round++) {
  for (const [name, file, args] of ways) {
    const t0 = performance.now();
    await execFileAsync(file, args);
    // the first round warms the file cache and is not counted
    if (round > 0) samples.get(name)?.push(performance.now() - t0);
  }
}
console.log(`sextant version, ${ROUNDS} rounds, ${cpus().length} CPUs, load ${loadavg()[0]?.toFixed(1)}`);
const base = median(samples.get(ways[1]![0]) ?? []);
for (const [name] of ways) {
  const m = median(samples.get(name) ?? []);
  console.log(
    `  ${name.padEnd(50)} median ${m.toFixed(0).padStart(5)} ms  (${(m / base).toFixed(2)}× the baseline)`,
  );
}
