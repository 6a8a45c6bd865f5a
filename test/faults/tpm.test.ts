// @tier system: swtpm
// One TPM I/O error must not disable the agent's TPM for good. A proxy between tcti-swtpm and a real
// swtpm drops or stalls single commands; the resilient TPM reopens its context, recreates the AK and EK, and the
// attestation that follows verifies against the same identity. What cannot be recovered is reported once
// (onFatal), which is where the agent exits non-zero for systemd to restart it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { promisify } from 'node:util';
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
import { seededRandom, startTpmProxy, TPM_CC, type TpmFault, type TpmProxy } from './tools/tpm-proxy.js';

const run = promisify(execFile);

async function attestOnce(ca: SwtpmCa, issuer: Issuer): Promise<Buffer> {
  const pending = await testVerifier(ca).challenge(issuer.identity());
  const userData = randomBytes(32);
  const verified = await pending.verify(await issuer.attest(pending.challenge, userData), userData);
  return verified.akName;
}

describe('TPM faults: dropped, stalled and lossy commands, full slots, a restarted swtpm', {
  timeout: 240_000,
}, () => {
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

  it('a TPM that stays gone: reopens fail in a row, then onFatal once (the agent exits non-zero for systemd)', async () => {
    tpm = await open({ attempts: 3 });
    const armed = proxy.arm({ fault: 'drop-command', commandCode: TPM_CC.GetRandom });
    await proxy.close();
    await assert.rejects(
      tpm.getRandom(8),
      (e: Error) =>
        e instanceof TpmUnavailableError && /5 reopens in a row failed, the TPM is gone/.test(e.message),
    );
    void armed;
    assert.equal(fatal.length, 1);
    assert.match(fatal[0]!.message, /cannot open TPM|IO failure|connection/);
  });

  // Only "nothing defined at that index" means no EK certificate.
  for (const fault of ['drop-command', 'drop-response'] as const) {
    it(`${fault} of NV_ReadPublic while reading the EK: a plain context reports the failure, the resilient one reads the certificate`, async () => {
      const plain = await openTpm(proxy.tcti);
      try {
        const armed = proxy.arm({ fault, commandCode: TPM_CC.NV_ReadPublic });
        await assert.rejects(plain.readEndorsementKey(), /IO failure/);
        await armed;
      } finally {
        await plain.close().catch(() => {});
      }
      tpm = await open();
      try {
        const armed = proxy.arm({ fault, commandCode: TPM_CC.NV_ReadPublic });
        const ek = await tpm.readEndorsementKey();
        await armed;
        assert.ok(ek.certificate && ek.certificate.length > 500, 'the EK certificate was read');
        assert.equal(tpm.reopens, 1);
        assert.deepEqual(fatal, []);
      } finally {
        await tpm.close();
      }
    });
  }

  it('50 attestations at once while 3 % of TPM commands are dropped: all verify, no fatal, the same AK', async () => {
    tpm = await open();
    const issuer = await createIssuer({ tpm, variant: 'qemu-vtpm', eventLogPath: '/nonexistent' });
    try {
      const ak = await attestOnce(ca, issuer);
      proxy.setLoss(0.03, ['drop-command', 'drop-response'], seededRandom(17));
      const aks = await Promise.all(Array.from({ length: 50 }, () => attestOnce(ca, issuer)));
      proxy.setLoss(0);
      assert.ok(proxy.dropped > 0, 'the proxy dropped commands');
      assert.ok(aks.every((a) => a.equals(ak)));
      assert.deepEqual(fatal, []);
      assert.ok(tpm.reopens >= 1);
    } finally {
      await issuer.close();
      await tpm.close();
    }
  });

  it('objects another client left fill the slots (TPM_RC_OBJECT_MEMORY): the context is reopened clean and the key made', async () => {
    tpm = await open();
    try {
      const ak = await tpm.createAk();
      // tpm2-tools on swtpm has no resource manager: each createprimary leaves its object loaded.
      for (let i = 0; i < 2; i++) {
        await run('tpm2_createprimary', ['-C', 'o', '-G', 'ecc', '-c', '/dev/null'], {
          env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti },
        });
      }
      const second = await tpm.createAk('ecc');
      assert.ok(second.public.equals(ak.public));
      assert.equal(tpm.reopens, 1);
      assert.ok(notices.some((n) => /object contexts|0x902/.test(n)));
      await tpm.quote(ak, [0], randomBytes(16));
      assert.deepEqual(fatal, []);
    } finally {
      await tpm.close();
    }
  });

  it('swtpm restarted under a running TPM user (TPM_RC_REFERENCE_H0, the transient AK gone): reopened, the same AK quotes', async () => {
    tpm = await open();
    const issuer = await createIssuer({ tpm, variant: 'qemu-vtpm', eventLogPath: '/nonexistent' });
    try {
      const akBefore = await attestOnce(ca, issuer);
      await swtpm.restart();
      const akAfter = await attestOnce(ca, issuer);
      assert.ok(akAfter.equals(akBefore));
      assert.ok(tpm.reopens >= 1);
      assert.ok(notices.some((n) => /not loaded|0x910/.test(n)));
      assert.deepEqual(fatal, []);
    } finally {
      await issuer.close();
      await tpm.close();
    }
  });
});
