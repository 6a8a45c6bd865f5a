// Issue 12 §4: one TPM I/O error must not disable the agent's TPM for good. A proxy between tcti-swtpm and a real
// swtpm drops or stalls single commands; the resilient TPM reopens its context, recreates the AK and EK, and the
// attestation that follows verifies against the same identity. What cannot be recovered is reported once
// (onFatal), which is where the agent exits non-zero for systemd to restart it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createIssuer, type Issuer } from '../../attestation/issuer.js';
import {
  openResilientTpm,
  openTpm,
  type Tpm,
  TpmOutcomeUnknownError,
  TpmUnavailableError,
} from '../../native/tpm/index.js';
import { testVerifier } from '../harness/cluster-kit.js';
import { createSwtpmCa, removeSwtpmCa, type Swtpm, type SwtpmCa, startSwtpm } from '../harness/swtpm.js';
import { startTpmProxy, TPM_CC, type TpmFault, type TpmProxy } from './tools/tpm-proxy.js';

async function attestOnce(ca: SwtpmCa, issuer: Issuer): Promise<Buffer> {
  const pending = await testVerifier(ca).challenge(issuer.identity());
  const userData = randomBytes(32);
  const verified = await pending.verify(await issuer.attest(pending.challenge, userData), userData);
  return verified.akName;
}

describe('TPM faults (issue 12 §4)', { timeout: 120_000 }, () => {
  let ca: SwtpmCa;
  let swtpm: Swtpm;
  before(async () => {
    ca = await createSwtpmCa();
    swtpm = await startSwtpm({ ca });
  });
  after(async () => {
    await swtpm.stop();
    removeSwtpmCa(ca);
  });

  let proxy: TpmProxy;
  let tpm: Tpm & { readonly reopens: number };
  let fatal: TpmUnavailableError[];
  let notices: string[];
  beforeEach(async () => {
    await proxy?.close();
    proxy = await startTpmProxy(swtpm.port);
    fatal = [];
    notices = [];
  });
  after(() => proxy?.close());

  const open = (options: { commandTimeoutMs?: number; attempts?: number } = {}) =>
    openResilientTpm(proxy.tcti, {
      backoffMs: 20,
      ...options,
      notice: (_l, m) => notices.push(m),
      onFatal: (e) => fatal.push(e),
    });

  it('today: one dropped response leaves a plain ESAPI context answering "wrong order" to every later call', async () => {
    const plain = await openTpm(proxy.tcti);
    try {
      const armed = proxy.arm({ fault: 'drop-response', commandCode: TPM_CC.PCR_Read });
      await assert.rejects(plain.readPcrs([0]), /IO failure/);
      await armed;
      await assert.rejects(plain.getRandom(8), /wrong order/);
    } finally {
      await plain.close().catch(() => {});
    }
  });

  const table: { fault: TpmFault; command: keyof typeof TPM_CC }[] = [
    { fault: 'drop-command', command: 'Quote' },
    { fault: 'drop-response', command: 'Quote' },
    { fault: 'drop-command', command: 'ActivateCredential' },
    { fault: 'drop-response', command: 'ActivateCredential' },
    { fault: 'drop-response', command: 'PCR_Read' },
  ];
  for (const row of table) {
    it(`${row.fault} of ${row.command}: the context is reopened, the AK recreated, attestation verifies with the same AK`, async () => {
      tpm = await open();
      const issuer = await createIssuer({ tpm, variant: 'qemu-vtpm', eventLogPath: '/nonexistent' });
      try {
        const akBefore = await attestOnce(ca, issuer);
        const armed = proxy.arm({ fault: row.fault, commandCode: TPM_CC[row.command] });
        const akAfter = await attestOnce(ca, issuer);
        await armed;
        assert.ok(akAfter.equals(akBefore), 'same AK after the reopen');
        assert.equal(tpm.reopens, 1);
        assert.deepEqual(fatal, []);
        assert.ok(notices.some((n) => /reopening the TPM context/.test(n)));
        // And it keeps working on the new context.
        await attestOnce(ca, issuer);
      } finally {
        await issuer.close();
        await tpm.close();
      }
    });
  }

  it('ten faults in a row on one agent: every one recovered, no TPM object slots leak', async () => {
    tpm = await open();
    const issuer = await createIssuer({ tpm, variant: 'qemu-vtpm', eventLogPath: '/nonexistent' });
    try {
      for (let i = 0; i < 10; i++) {
        const armed = proxy.arm({
          fault: i % 2 ? 'drop-response' : 'drop-command',
          commandCode: i % 3 ? TPM_CC.Quote : TPM_CC.ActivateCredential,
        });
        await attestOnce(ca, issuer);
        await armed;
      }
      assert.equal(tpm.reopens, 10);
      assert.deepEqual(fatal, []);
    } finally {
      await issuer.close();
      await tpm.close();
    }
  });

  it('a PCR extend lost in transit is not retried blindly: the caller learns its outcome is unknown, the TPM works on', async () => {
    tpm = await open();
    try {
      const before16 = (await tpm.readPcrs([16])).get(16)!;
      const armed = proxy.arm({ fault: 'drop-response', commandCode: TPM_CC.PCR_Extend });
      await assert.rejects(tpm.extendPcr(16, randomBytes(32)), TpmOutcomeUnknownError);
      await armed;
      // The TPM did run it before the response was lost: exactly one extend, not two.
      const after16 = (await tpm.readPcrs([16])).get(16)!;
      assert.ok(!after16.equals(before16));
      assert.deepEqual(fatal, []);
    } finally {
      await tpm.close();
    }
  });

  it('a stalled command is a stuck TPM: reported once through onFatal within the command timeout', async () => {
    tpm = await open({ commandTimeoutMs: 1500 });
    const armed = proxy.arm({ fault: 'stall', commandCode: TPM_CC.GetRandom });
    const started = Date.now();
    await assert.rejects(
      tpm.getRandom(8),
      (e: Error) => e instanceof TpmUnavailableError && /no answer within 1500 ms/.test(e.message),
    );
    await armed;
    assert.ok(Date.now() - started < 5000);
    assert.equal(fatal.length, 1);
    await assert.rejects(tpm.readPcrs([0]), TpmUnavailableError);
    assert.equal(fatal.length, 1, 'reported once');
    // The stuck worker thread keeps the old context: nothing to close cleanly; the agent exits here.
  });

  it('a TPM that stays gone: bounded attempts, then onFatal (the agent exits non-zero for systemd)', async () => {
    tpm = await open({ attempts: 3 });
    const armed = proxy.arm({ fault: 'drop-command', commandCode: TPM_CC.GetRandom });
    await proxy.close();
    await assert.rejects(
      tpm.getRandom(8),
      (e: Error) => e instanceof TpmUnavailableError && /after 3 attempts/.test(e.message),
    );
    void armed;
    assert.equal(fatal.length, 1);
    assert.match(fatal[0]!.message, /cannot open TPM|IO failure|connection/);
  });
});
