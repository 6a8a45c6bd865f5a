// Identify/Attest behind the process's CallLimits: a flood from one address, or from many, cannot monopolise the
// TPM or hold a legitimate join up without bound. The handlers run in-process with the peer each call names and a
// fake TPM that, like a real TPM, does one operation at a time.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CallLimits, TokenBucket } from '../../../agent/joinservice/limits.js';
import {
  type Attester,
  attestationService,
  type CallGuard,
  createEphemeralIdentity,
} from '../../../attestation/atls/index.js';
import { AttestationDocument, AttesterIdentity, Challenge } from '../../../gen/proto/attestation.js';

/** A TPM that serves one operation at a time, each taking `ms`. */
function serialTpm(ms: number): Attester & { operations: number } {
  let queue: Promise<unknown> = Promise.resolve();
  const tpm = {
    operations: 0,
    identity: async () => AttesterIdentity.fromPartial({}),
    attest: (_c: Challenge, userData: Buffer) => {
      const run = queue.then(async () => {
        tpm.operations++;
        await new Promise((r) => setTimeout(r, ms));
        return AttestationDocument.fromPartial({ userData });
      });
      queue = run.catch(() => {});
      return run;
    },
  };
  return tpm;
}

type Outcome = { ok: true; ms: number } | { ok: false; code: grpc.status; details: string };

async function attestAs(service: ReturnType<typeof attestationService>, peer: string): Promise<Outcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const call = { getPeer: () => peer, request: Challenge.fromPartial({ nonce: randomBytes(32) }) };
    service.attest(call as never, (err) => {
      if (err) resolve({ ok: false, code: err.code ?? grpc.status.UNKNOWN, details: err.details ?? '' });
      else resolve({ ok: true, ms: performance.now() - started });
    });
  });
}

async function identifyAs(service: ReturnType<typeof attestationService>, peer: string): Promise<Outcome> {
  return new Promise((resolve) => {
    service.identify({ getPeer: () => peer, request: {} } as never, (err) => {
      if (err) resolve({ ok: false, code: err.code ?? grpc.status.UNKNOWN, details: err.details ?? '' });
      else resolve({ ok: true, ms: 0 });
    });
  });
}

describe('Identify/Attest behind CallLimits', () => {
  it('a flood of 300 concurrent Attest from one address: its burst is served, the rest refused, a join stays fast', async () => {
    const identity = await createEphemeralIdentity();
    const figures: Record<string, number> = {};
    for (const guarded of [false, true]) {
      const tpm = serialTpm(5);
      const guard: CallGuard | undefined = guarded ? new CallLimits() : undefined;
      const service = attestationService(tpm, identity, guard);
      const flood = Array.from({ length: 300 }, () => attestAs(service, 'ipv4:10.9.9.9:40000'));
      const join = await attestAs(service, 'ipv4:10.0.0.7:41000');
      const results = await Promise.all(flood);
      assert.ok(join.ok, 'the legitimate join is served');
      figures[guarded ? 'guarded' : 'unguarded'] = join.ms;
      if (guarded) {
        const refused = results.filter((r): r is Extract<Outcome, { ok: false }> => !r.ok);
        assert.equal(results.length - refused.length, 10, 'exactly the per-peer burst of 10 is served');
        assert.ok(refused.every((r) => r.code === grpc.status.RESOURCE_EXHAUSTED));
        assert.match(refused[0]!.details, /attest: too many requests from this address/);
        assert.equal(tpm.operations, 11, 'the TPM did the burst and the join, nothing else');
      } else {
        assert.ok(results.every((r) => r.ok));
        assert.equal(tpm.operations, 301);
      }
    }
    // Figures, not timed assertions: what the flood costs the join, with and without the limits.
    console.log(
      `join attest latency under a 300-call flood (5 ms TPM ops): unguarded ${figures.unguarded!.toFixed(0)} ms, guarded ${figures.guarded!.toFixed(0)} ms`,
    );
  });

  it('many addresses at once: the TPM budget caps the operations all of them together get', async () => {
    const identity = await createEphemeralIdentity();
    const tpm = serialTpm(0);
    let now = 0;
    const limits = new CallLimits({ tpmOpsBurst: 20, tpmOpsPerSecond: 10, tpmReservedShare: 0 }, () => now);
    const service = attestationService(tpm, identity, limits);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => attestAs(service, `ipv4:10.1.0.${i}:5000`)),
    );
    assert.equal(results.filter((r) => r.ok).length, 10, '20 operations of budget, 2 per Attest');
    const refused = results.find((r): r is Extract<Outcome, { ok: false }> => !r.ok);
    assert.match(refused?.details ?? '', /TPM operation budget exhausted/);
    now += 1000; // a second later: 10 operations back
    assert.ok((await attestAs(service, 'ipv4:10.2.0.1:5000')).ok);
    // Identify costs no TPM operation, but still counts against its address.
    assert.ok((await identifyAs(service, 'ipv4:10.2.0.2:5000')).ok);
  });

  it('the concurrency bound refuses beyond its queue instead of letting calls pile up', async () => {
    const identity = await createEphemeralIdentity();
    const tpm = serialTpm(20);
    const limits = new CallLimits({ maxConcurrent: 1, maxQueued: 2, burstPerPeer: 100 });
    const service = attestationService(tpm, identity, limits);
    const results = await Promise.all(
      Array.from({ length: 6 }, () => attestAs(service, 'ipv4:10.3.0.1:5000')),
    );
    assert.equal(results.filter((r) => r.ok).length, 3, 'one running, two queued');
    assert.ok(results.some((r) => !r.ok && /too many verifications in flight/.test(r.details)));
  });

  it('TokenBucket: takes n when it has n, refills at its rate, never above its burst', () => {
    let now = 0;
    const b = new TokenBucket(4, 2, () => now);
    assert.equal(b.take(3), true);
    assert.equal(b.take(2), false, 'only 1 left: nothing taken');
    assert.equal(b.take(1), true);
    now += 1000;
    assert.equal(b.take(2), true);
    now += 60_000;
    assert.equal(b.take(5), false);
    assert.equal(b.take(4), true);
  });
});
