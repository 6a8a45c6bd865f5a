// Attestation validation throughput on one core, next to the physical limit of that step: raw node:crypto
// signature verifications per second for the same AK type, over the same quote, measured in the same run.
// Run: npx tsx test/bench/attestation.bench.ts [seconds-per-round] (default 1; 5 interleaved rounds, median)
import { createHash, randomBytes, verify } from 'node:crypto';
import {
  type AttestationDocument,
  clearValidationCaches,
  createChallenge,
  createIssuer,
  createTrust,
  type ExpectedChallenge,
  type Measurements,
  parseEventLog,
  parseTpmtPublic,
  parseTpmtSignature,
  replayEventLog,
  validateDocument,
} from '../../attestation/index.js';
import { fixturePcrs, startAttester, VARIANT } from '../attestation/helpers.js';

const roundSeconds = Number(process.argv[2] ?? 1);
const ROUNDS = 5;

function rate(fn: () => void): number {
  const deadline = performance.now() + roundSeconds * 1000;
  let n = 0;
  const start = performance.now();
  while (performance.now() < deadline) {
    // batches keep the clock reads out of the measurement
    for (let i = 0; i < 64; i++) fn();
    n += 64;
  }
  return n / ((performance.now() - start) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number) => `${Math.round(x).toLocaleString('en-US')}/s`;

async function main(): Promise<void> {
  const node = await startAttester({ bootLog: true });
  try {
    const trust = createTrust({ ekCaCertificates: [node.swtpm.ca.rootPem, node.swtpm.ca.issuerPem] });
    const measurements: Measurements = {};
    for (const pcr of [0, 1, 2, 3, 4, 5, 6, 7, 9]) {
      measurements[pcr] = { expected: fixturePcrs()[String(pcr)]!, warnOnly: false };
    }
    const userData = randomBytes(32);
    // swtpm has 3 object slots: one extra issuer (AK) at a time
    const cases: Array<{ name: string; doc: AttestationDocument; expected: ExpectedChallenge }> = [];
    for (const [name, akAlgorithm, withLog] of [
      ['ECC P-256 AK, with event log', 'ecc', true],
      ['ECC P-256 AK, no event log', 'ecc', false],
      ['RSA-2048 AK, no event log', 'rsa', false],
    ] as const) {
      const issuer = withLog
        ? node.issuer
        : await createIssuer({ tpm: node.tpm, variant: VARIANT, akAlgorithm, eventLogPath: '/nonexistent' });
      const { challenge, expected } = createChallenge(issuer.identity(), trust);
      cases.push({ name, doc: await issuer.attest(challenge, userData), expected });
      if (!withLog) await issuer.close();
    }

    const first = cases[0]!;
    const t0 = performance.now();
    validateDocument(first.doc, {
      expected: first.expected,
      userData,
      measurements,
      trust,
      variant: VARIANT,
    });
    const coldMs = performance.now() - t0;

    const raw = (doc: AttestationDocument) => {
      const ak = parseTpmtPublic(doc.akPublic);
      const sig = parseTpmtSignature(doc.signature);
      const key = ak.type === 'ecc' ? { key: ak.key, dsaEncoding: 'ieee-p1363' as const } : ak.key;
      return () => {
        if (!verify('sha256', doc.quote, key, sig.signature)) throw new Error('raw verify failed');
      };
    };
    const full = (c: (typeof cases)[number]) => () => {
      validateDocument(c.doc, { expected: c.expected, userData, measurements, trust, variant: VARIANT });
    };
    const runs: Array<{ label: string; fn: () => void; samples: number[] }> = [
      { label: 'raw crypto.verify, ECDSA P-256 (baseline)', fn: raw(cases[1]!.doc), samples: [] },
      { label: `validateDocument, ${cases[1]!.name}`, fn: full(cases[1]!), samples: [] },
      {
        label: `validateDocument, ${cases[0]!.name} (${cases[0]!.doc.eventLog.length} B, 25 events)`,
        fn: full(cases[0]!),
        samples: [],
      },
      {
        label: 'event log parse + SHA-256 replay alone (uncached)',
        fn: () => replayEventLog(parseEventLog(cases[0]!.doc.eventLog)),
        samples: [],
      },
      {
        label: 'validateDocument, ECC with event log, all caches cleared each time',
        fn: () => {
          clearValidationCaches(trust);
          full(cases[0]!)();
        },
        samples: [],
      },
      { label: 'raw crypto.verify, RSASSA-2048 (baseline)', fn: raw(cases[2]!.doc), samples: [] },
      { label: `validateDocument, ${cases[2]!.name}`, fn: full(cases[2]!), samples: [] },
    ];
    for (const r of runs) rate(r.fn); // warm-up: JIT and caches
    for (let round = 0; round < ROUNDS; round++) for (const r of runs) r.samples.push(rate(r.fn));

    const m = runs.map((r) => median(r.samples));
    console.log(
      `attestation validation, one core, ${ROUNDS} interleaved rounds of ${roundSeconds} s, median`,
    );
    console.log(
      `node ${process.version}; first (cold-cache) validation with event log: ${coldMs.toFixed(2)} ms`,
    );
    for (const [i, r] of runs.entries()) {
      const base = r.label.includes('RSA') ? m[5]! : m[0]!;
      const share = r.label.startsWith('validateDocument')
        ? `  (${((m[i]! / base) * 100).toFixed(0)} % of raw)`
        : '';
      console.log(`${r.label.padEnd(72)} ${fmt(m[i]!).padStart(10)}${share}`);
    }
    const docSha = createHash('sha256').update(cases[0]!.doc.quote).digest('hex').slice(0, 12);
    console.log(`(quote ${docSha}…; targets: ECC without log ≥ 50 % of raw, with log ≥ 1000/s)`);
  } finally {
    await node.stop();
  }
}

await main();
