// N nodes asking one JoinService for join tickets at once, each node with its own swtpm, next to attestation
// validation alone measured in the same run.
// Run: npx tsx test/bench/join.bench.ts [N ...]   (default 10 50)
//
// The JoinService is a real agent process (the control plane, inited through the CLI's init client) on loopback;
// each node is a swtpm + issuer in this process doing exactly what the join client does on the wire: attested
// TLS to the JoinService, Challenge, an attestation bound to that channel, IssueJoinTicket.
// Each ticket's bootstrap token is a Secret created through the API (before: a `kubeadm token create` process).
// Every node shares 127.0.0.1, so the agent runs with SEXTANT_JOIN_BURST_PER_PEER raised.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createPeerVerifier } from '../../attestation/atls/index.js';
import { createTrust } from '../../attestation/ek-chain.js';
import { initControlPlane, startAgentNode } from '../harness/agent-node.js';
import { initRequest, swtpmMeasurements } from '../harness/cluster-kit.js';
import { requestJoinTicket, startWireMachine, type WireMachine } from '../harness/join-wire.js';
import { createSwtpmCa, removeSwtpmCa } from '../harness/swtpm.js';

const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0);
const SIZES = sizes.length > 0 ? sizes : [10, 50];
const TICKS = 100; // USER_HZ on Linux: /proc/<pid>/stat counts CPU time in 1/100 s

/** CPU seconds of a process: its own, and that of children it waited for (none since tokens go through the API). */
function cpuOf(pid: number): { self: number; children: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const n = (i: number) => Number(fields[i - 3]);
  return { self: (n(14) + n(15)) / TICKS, children: (n(16) + n(17)) / TICKS };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const ca = await createSwtpmCa();
const cp = await startAgentNode({ ca, env: { SEXTANT_JOIN_BURST_PER_PEER: '1000000' } });
const trust = createTrust({ ekCaCertificates: [ca.rootPem, ca.issuerPem] });
const nodes: WireMachine[] = [];
try {
  await initControlPlane(cp, ca, initRequest(cp.initSecret), 30_000);
  const endpoint = { host: '127.0.0.1', port: cp.joinServicePort };
  // The bootstrap tokens are Secrets the JoinService creates through the API: the API server's CPU (the kubeadm
  // stand-in's, a Node.js process apart from the agent) is counted per ticket too.
  const apiServerPid = Number(
    readFileSync(join(cp.rootfs, 'var/run/kubeadm-standin/apiserver.pid'), 'utf8').trim(),
  );

  console.log(
    `join bench: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load ${loadavg()[0]!.toFixed(1)}, Node ${process.version}`,
  );
  for (const n of SIZES) {
    // Fresh TPMs for every round: a node the JoinService admitted before must rejoin, not join again.
    // One at a time: swtpm_setup's local CA signs EK certificates under a lock that parallel setups contend on.
    const first = nodes.length;
    while (nodes.length < first + n) {
      nodes.push(await startWireMachine(ca));
    }
    const joiners = nodes.slice(first);

    const before = cpuOf(cp.process.pid!);
    const apiBefore = cpuOf(apiServerPid);
    const started = performance.now();
    const latencies = await Promise.all(
      joiners.map(async (node, i) => {
        const t0 = performance.now();
        const ticket = await requestJoinTicket(endpoint, trust, node.issuer, {
          nodeName: `bench-${n}-${i}`,
          diskUuid: randomUUID(),
        });
        if (ticket.token === '') throw new Error('ticket without a bootstrap token');
        return performance.now() - t0;
      }),
    );
    const wall = (performance.now() - started) / 1000;
    const after = cpuOf(cp.process.pid!);
    const apiAfter = cpuOf(apiServerPid);
    const apiPerJoin = ((apiAfter.self - apiBefore.self) / n) * 1000;
    latencies.sort((a, b) => a - b);
    const selfPerJoin = ((after.self - before.self) / n) * 1000;
    const childPerJoin = ((after.children - before.children) / n) * 1000;
    console.log(
      `N=${String(n).padStart(3)}: all ${n} tickets issued in ${wall.toFixed(2)} s; latency p50 ${percentile(latencies, 50).toFixed(0)} ms, p99 ${percentile(latencies, 99).toFixed(0)} ms; ` +
        `JoinService CPU per join ${selfPerJoin.toFixed(1)} ms (agent) + ${childPerJoin.toFixed(1)} ms (child processes) + ${apiPerJoin.toFixed(1)} ms (API server, stand-in)`,
    );
  }

  // Baseline: what each ticket cost before, a `kubeadm token create` process (the stand-in here), same run.
  const kubeadm = join(cp.rootfs, 'usr/local/bin/kubeadm');
  const runs = 10;
  const own0 = cpuOf(process.pid);
  const api0 = cpuOf(apiServerPid);
  for (let i = 0; i < runs; i++) {
    execFileSync(kubeadm, ['token', 'create', '--ttl', '30m0s', '--rootfs', cp.rootfs], { stdio: 'ignore' });
  }
  const own1 = cpuOf(process.pid);
  const api1 = cpuOf(apiServerPid);
  console.log(
    `baseline: one \`kubeadm token create\` process (the former per-ticket token) ${(((own1.children - own0.children) / runs) * 1000).toFixed(1)} ms CPU + ${(((api1.self - api0.self) / runs) * 1000).toFixed(1)} ms (API server, stand-in), ${runs} runs`,
  );

  // Baseline: attestation validation alone, the same verifier policy the JoinService applies, same documents.
  const policy = createPeerVerifier({ trust, measurements: swtpmMeasurements(), variant: 'qemu-vtpm' });
  const sample = nodes.slice(0, 20);
  const work: { verify: () => Promise<unknown> }[] = [];
  for (const node of sample) {
    const userData = Buffer.alloc(32, 7);
    const pending = await policy.challenge(await node.issuer.identity());
    const document = await node.issuer.attest(pending.challenge, userData);
    work.push({ verify: () => pending.verify(document, userData) });
  }
  const cpu0 = process.cpuUsage();
  for (const w of work) await w.verify();
  const cpu = process.cpuUsage(cpu0);
  const validationMs = (cpu.user + cpu.system) / 1000 / work.length;
  console.log(
    `baseline: attestation validation alone ${validationMs.toFixed(2)} ms CPU per document (first contact: EK chain and AK parse uncached), ${work.length} documents`,
  );
} finally {
  for (const node of nodes) await node.stop();
  await cp.stop();
  removeSwtpmCa(ca);
}
