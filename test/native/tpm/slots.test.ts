// @tier system: swtpm
// swtpm has no resource manager and 3 object and 3 session slots: what a context loses with its connection (a
// key or session whose answer was dropped) stays loaded until flushed. The resilient layer takes
// TPM_RC_OBJECT_MEMORY and TPM_RC_SESSION_MEMORY for that: it reopens, the probe context flushes the leftovers,
// and the call is retried.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { openResilientTpm, openTpm, type Tpm, TpmError } from '../../../native/tpm/index.js';
import type { AttestationKey } from '../../../native/tpm/keys.js';
import { startTpmProxy, TPM_CC, type TpmProxy } from '../../faults/tools/tpm-proxy.js';
import type { Swtpm } from '../../harness/swtpm.js';
import { defer, freshSwtpm, tpm2 } from './tools.js';

const TPM_RC_OBJECT_MEMORY = 0x902;
const TPM_RC_SESSION_MEMORY = 0x903;
const CREDENTIAL_STUB = Buffer.from([0x00, 0x02, 0x00, 0x00]);

function asAk(ek: { handle: number; public: Buffer }): AttestationKey {
  return { handle: ek.handle, algorithm: 'rsa', public: ek.public, name: Buffer.alloc(0) };
}

/** Another context loses the answer to `command` `count` times, leaving what it made loaded in the TPM. */
async function leak(
  proxy: TpmProxy,
  command: 'CreatePrimary' | 'PolicySecret',
  count: number,
): Promise<void> {
  for (let i = 0; i < count; i++) {
    const plain = await openTpm(proxy.tcti);
    try {
      const ek = await plain.readEndorsementKey();
      const armed = proxy.arm({ fault: 'drop-response', commandCode: TPM_CC[command] });
      // PolicySecret runs on a policy session ActivateCredential starts; the persistent EK stands in for the AK.
      const lost =
        command === 'CreatePrimary'
          ? plain.createAk('ecc')
          : plain.activateCredential(asAk(ek), ek, CREDENTIAL_STUB, CREDENTIAL_STUB);
      await assert.rejects(lost, /IO failure/);
      await armed;
    } finally {
      await plain.close().catch(() => {});
    }
  }
}

async function loaded(swtpm: Swtpm, what: 'handles-transient' | 'handles-loaded-session'): Promise<number> {
  const out = await tpm2(swtpm, 'tpm2_getcap', [what]);
  return out.split('\n').filter((l) => l.startsWith('-')).length;
}

const rows: {
  name: string;
  command: 'CreatePrimary' | 'PolicySecret';
  leaks: number;
  capability: 'handles-transient' | 'handles-loaded-session';
  rc: number;
  /** The call the full slots refuse; it must be answered by the TPM itself after the reopen. */
  call: (tpm: Tpm, ak: AttestationKey) => Promise<unknown>;
}[] = [
  {
    name: 'two keys whose CreatePrimary answer was lost (TPM_RC_OBJECT_MEMORY)',
    command: 'CreatePrimary',
    leaks: 2,
    capability: 'handles-transient',
    rc: TPM_RC_OBJECT_MEMORY,
    call: async (tpm, ak) => {
      const again = await tpm.createAk('ecc');
      assert.ok(again.public.equals(ak.public), 'the same primary AK');
      return tpm.quote(ak, [0], randomBytes(16));
    },
  },
  {
    name: 'three policy sessions whose PolicySecret answer was lost (TPM_RC_SESSION_MEMORY)',
    command: 'PolicySecret',
    leaks: 3,
    capability: 'handles-loaded-session',
    rc: TPM_RC_SESSION_MEMORY,
    // A stub credential: past the session, the TPM itself refuses it (not for want of a slot).
    call: async (tpm, ak) => {
      const ek = await tpm.readEndorsementKey();
      await assert.rejects(
        tpm.activateCredential(ak, ek, CREDENTIAL_STUB, CREDENTIAL_STUB),
        (e: unknown) =>
          e instanceof TpmError && (e.rc & 0xfff) !== TPM_RC_SESSION_MEMORY && e.rc >>> 16 === 0,
      );
    },
  },
];

for (const row of rows) {
  test(`slots full of ${row.name}: reopened, the leftovers flushed, the call answered`, async (t) => {
    const swtpm = await freshSwtpm(t);
    const proxy = await startTpmProxy(swtpm.port);
    defer(t, () => proxy.close());
    const notices: string[] = [];
    const fatal: unknown[] = [];
    const tpm = await openResilientTpm(proxy.tcti, {
      backoffMs: 1,
      notice: (_l, m) => notices.push(m),
      onFatal: (e) => fatal.push(e),
    });
    defer(t, () => tpm.close());
    const ak = await tpm.createAk('ecc');
    await leak(proxy, row.command, row.leaks);
    assert.ok((await loaded(swtpm, row.capability)) >= row.leaks, 'the leftovers are loaded');

    await row.call(tpm, ak);
    assert.equal(tpm.reopens, 1);
    assert.ok(
      notices.some((n) => n.includes(`0x${row.rc.toString(16)}`)),
      `the reopen names rc 0x${row.rc.toString(16)}`,
    );
    assert.deepEqual(fatal, []);
  });
}
