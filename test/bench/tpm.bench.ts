// TPM calls through the koffi binding vs the same calls through the tpm2-tools CLI, side by side on one swtpm.
// Run: npx tsx test/bench/tpm.bench.ts [iterations]   (default 30; median of each)
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openTpm } from '../../native/tpm/index.js';
import { startSwtpm } from '../harness/swtpm.js';

const execFileAsync = promisify(execFile);
const N = Math.max(20, Number(process.argv[2] ?? 30));
const WARMUP = 3;
const QUOTE_PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 15];
const ALL_PCRS = Array.from({ length: 24 }, (_, i) => i);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

async function time(
  n: number,
  op: () => Promise<unknown>,
  between?: () => Promise<unknown>,
): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n + WARMUP; i++) {
    const t0 = performance.now();
    await op();
    const dt = performance.now() - t0;
    if (i >= WARMUP) samples.push(dt);
    if (between) await between();
  }
  return samples;
}

const swtpm = await startSwtpm();
const dir = await mkdtemp(join(tmpdir(), 'sextant-tpm-bench-'));
const env = { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti, TSS2_LOG: 'all+none' };
const cli = (tool: string, ...args: string[]) => execFileAsync(tool, args, { env, cwd: dir });

try {
  const tpm = await openTpm(swtpm.tcti);
  const rows: { op: string; cliCmd: string; ffi: number[]; cli: number[] }[] = [];

  rows.push({
    op: '24-PCR read (SHA-256)',
    cliCmd: 'tpm2_pcrread sha256:0,…,23',
    ffi: await time(N, () => tpm.readPcrs(ALL_PCRS)),
    cli: await time(N, () => cli('tpm2_pcrread', `sha256:${ALL_PCRS.join(',')}`)),
  });

  rows.push({
    op: 'PCR extend (PCR 16, SHA-256)',
    cliCmd: 'tpm2_pcrextend 16:sha256=…',
    ffi: await time(N, () => tpm.extendPcr(16, randomBytes(32))),
    cli: await time(N, () => cli('tpm2_pcrextend', `16:sha256=${randomBytes(32).toString('hex')}`)),
  });

  // Quotes: the binding keeps its AK loaded; the CLI loads its saved AK context on every call (that is how a
  // shell-driven agent would work). swtpm has no resource manager, so CLI leftovers are flushed between calls.
  const ak = await tpm.createAk('ecc');
  const ffiQuote = await time(N, () => tpm.quote(ak, QUOTE_PCRS, randomBytes(32)));
  await tpm.flush(ak.handle);
  await cli('tpm2_flushcontext', '-t');
  await cli(
    'tpm2_createprimary',
    ...['-C', 'e', '-g', 'sha256', '-G', 'ecc256:ecdsa-sha256:null', '-c', 'ak.ctx'],
    ...['-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign'],
  );
  await cli('tpm2_flushcontext', '-t');
  const cliQuote = await time(
    N,
    () =>
      cli(
        'tpm2_quote',
        ...['-c', 'ak.ctx', '-l', `sha256:${QUOTE_PCRS.join(',')}`, '-q', randomBytes(32).toString('hex')],
        ...['-m', 'quote.msg', '-s', 'quote.sig', '-g', 'sha256'],
      ),
    () => cli('tpm2_flushcontext', '-t'),
  );
  rows.push({
    op: 'ECC P-256 quote (9 PCRs)',
    cliCmd: 'tpm2_quote -c ak.ctx …',
    ffi: ffiQuote,
    cli: cliQuote,
  });
  await tpm.close();

  const fmt = (ms: number) => `${ms.toFixed(2)} ms`;
  console.log(
    `TPM: koffi binding vs tpm2-tools CLI on one swtpm (${swtpm.tcti}), median of ${N} (+${WARMUP} warm-up), ` +
      `${cpus().length} cores, load ${loadavg()[0]?.toFixed(2)}`,
  );
  console.log('| operation | binding (FFI) | tpm2-tools CLI | speed-up |');
  console.log('| --- | --- | --- | --- |');
  let failed = false;
  for (const r of rows) {
    const f = median(r.ffi);
    const c = median(r.cli);
    const speedup = c / f;
    if (speedup < 10) failed = true;
    console.log(`| ${r.op} | ${fmt(f)} | ${fmt(c)} (\`${r.cliCmd}\`) | ${speedup.toFixed(1)}× |`);
  }
  console.log(failed ? 'budget: FAILED (target ≥10× per operation)' : 'budget: met (≥10× per operation)');
  process.exitCode = failed ? 1 : 0;
} finally {
  await rm(dir, { recursive: true, force: true });
  await swtpm.stop();
}
