// The resilient layer's decisions, in-process over a scripted fake TPM (dropped commands, lost slots, a restart):
// which failures reopen, which retries are free, who waits for a reopen, when the TPM is declared gone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EndorsementKey } from '../../../native/tpm/ek.js';
import {
  openResilientTpm,
  type Tpm,
  TpmError,
  TpmOutcomeUnknownError,
  TpmUnavailableError,
} from '../../../native/tpm/index.js';
import type { AttestationKey } from '../../../native/tpm/keys.js';

const RC = {
  tctiIo: 0x000a000a, // TSS2_TCTI_RC_IO_ERROR: the connection broke under a command
  esysBadSequence: 0x00070007, // TSS2_ESYS_RC_BAD_SEQUENCE: ESAPI refuses a context left mid-command
  referenceH0: 0x910, // TPM_RC_REFERENCE_H0: the transient key is not loaded (TPM restarted)
  objectMemory: 0x902, // TPM_RC_OBJECT_MEMORY: no free object slot
  sessionMemory: 0x903, // TPM_RC_SESSION_MEMORY: no free session slot
  handle: 0x18b, // TPM_RC_HANDLE: a refusal a reopen does not cure
};

/** What the fake's next calls on a context do: a queue of return codes (0 = answer), then answer. */
type Script = (ctx: FakeContext, op: string) => number;

class FakeContext implements Tpm {
  readonly tcti = 'fake';
  broken = false;
  closed = false;
  readonly loaded = new Set<number>();
  constructor(
    readonly id: number,
    private readonly world: World,
  ) {}

  async #call<T>(op: string, answer: () => T): Promise<T> {
    // Like EsysContext: a closed context refuses new calls; the ones already queued still run (and fail if broken).
    if (this.closed) throw new TypeError(`fake: ${op} on closed context ${this.id}`);
    this.world.calls.push({ op, ctx: this.id });
    await new Promise((r) => setImmediate(r));
    if (this.broken) throw new TpmError(op, RC.esysBadSequence);
    const rc = this.world.script(this, op);
    if (rc === RC.tctiIo) this.broken = true;
    if (rc !== 0) throw new TpmError(op, rc);
    return answer();
  }
  getRandom(bytes: number) {
    return this.#call('getRandom', () => Buffer.alloc(bytes, this.id));
  }
  readPcrs() {
    return this.#call('readPcrs', () => new Map([[0, Buffer.alloc(32)]]));
  }
  extendPcr() {
    return this.#call('extendPcr', () => undefined);
  }
  pcrEvent() {
    return this.#call('pcrEvent', () => undefined);
  }
  createAk(): Promise<AttestationKey> {
    return this.#call('createAk', () => {
      this.world.akCreated += 1;
      const handle = 0x80000000 + this.world.akCreated;
      this.loaded.add(handle);
      return { handle, algorithm: 'ecc', public: Buffer.from('ak'), name: Buffer.from('n') };
    });
  }
  readPublic() {
    return this.#call('readPublic', () => ({ public: Buffer.from('ak'), name: Buffer.from('n') }));
  }
  quote(ak: AttestationKey) {
    return this.#call('quote', () => {
      if (!this.loaded.has(ak.handle)) throw new TpmError('quote', RC.referenceH0);
      return { attest: Buffer.from(`ctx${this.id}`), signature: Buffer.alloc(1) };
    });
  }
  readEndorsementKey(): Promise<EndorsementKey> {
    return this.#call('readEndorsementKey', () => ({
      handle: 1,
      public: Buffer.from('ek'),
      certificate: null,
    }));
  }
  activateCredential() {
    return this.#call('activateCredential', () => Buffer.alloc(0));
  }
  async flush(handle: number) {
    this.loaded.delete(handle);
  }
  async close() {
    this.closed = true;
  }
}

class World {
  opens = 0;
  akCreated = 0;
  calls: { op: string; ctx: number }[] = [];
  contexts: FakeContext[] = [];
  /** Open fails while this is above zero (counting down), or for good when Infinity. */
  failOpens = 0;
  openGate: Promise<void> | undefined;
  constructor(public script: Script = () => 0) {}
  open = async (): Promise<Tpm> => {
    await this.openGate;
    if (this.failOpens > 0) {
      this.failOpens -= 1;
      throw new TpmError('open', RC.tctiIo, 'cannot open TPM at "fake": IO failure');
    }
    const ctx = new FakeContext(++this.opens, this);
    this.contexts.push(ctx);
    return ctx;
  };
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; !condition(); i++) {
    if (i > 500) throw new Error('condition not met within 5 s');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Fails the n-th call of `op` (across contexts) with `rc`; everything else answers. */
function failNth(op: string, n: number, rc: number): Script {
  let seen = 0;
  return (_ctx, name) => (name === op && ++seen === n ? rc : 0);
}

async function open(
  world: World,
  options: { attempts?: number; reopenAttempts?: number; maxReopensPerCall?: number } = {},
) {
  const fatal: TpmUnavailableError[] = [];
  const notices: string[] = [];
  const tpm = await openResilientTpm('fake', {
    open: world.open,
    backoffMs: 1,
    ...options,
    notice: (_l, m) => notices.push(m),
    onFatal: (e) => fatal.push(e),
  });
  return { tpm, fatal, notices };
}

describe('resilient TPM: reopens, free retries, retry budgets, a TPM gone', () => {
  it('50 calls in flight when one is lost in transit: one reopen, every call answered on the new context, retries after the first free', async () => {
    const world = new World(failNth('quote', 1, RC.tctiIo));
    const { tpm, fatal } = await open(world, { attempts: 2 });
    const ak = await tpm.createAk();
    const quotes = await Promise.all(Array.from({ length: 50 }, () => tpm.quote(ak, [0], Buffer.alloc(16))));
    assert.equal(tpm.reopens, 1);
    assert.deepEqual(fatal, []);
    // The lost call and the 49 that ESAPI then refused on the old context all ran again on context 2.
    assert.equal(quotes.filter((q) => q.attest.toString() === 'ctx2').length, 50);
    assert.equal(world.akCreated, 2, 'the AK recreated once on the new context, not once per caller');
  });

  it('calls issued while a reopen runs wait for it and go to the new context, not the old one', async () => {
    const world = new World(failNth('getRandom', 1, RC.tctiIo));
    const { tpm } = await open(world);
    let release!: () => void;
    world.openGate = new Promise((r) => {
      release = r;
    });
    const first = tpm.getRandom(4);
    await until(() => world.contexts[0]!.closed); // the getRandom failed; its reopen waits at the gate
    const during = tpm.readPcrs();
    await new Promise((r) => setTimeout(r, 10));
    release();
    await Promise.all([first, during]);
    const readPcrsCalls = world.calls.filter((c) => c.op === 'readPcrs');
    assert.deepEqual(readPcrsCalls, [{ op: 'readPcrs', ctx: 2 }], 'one readPcrs, on context 2 only');
  });

  const refusals: { name: string; rc: number }[] = [
    {
      name: 'TPM_RC_REFERENCE_H0 (swtpm restarted under the agent, the transient AK gone)',
      rc: RC.referenceH0,
    },
    { name: 'TPM_RC_OBJECT_MEMORY (slots held by a lost context)', rc: RC.objectMemory },
    {
      name: 'TPM_RC_SESSION_MEMORY (a StartAuthSession whose answer was lost holds a session slot)',
      rc: RC.sessionMemory,
    },
  ];
  for (const row of refusals) {
    it(`${row.name}: reopen (stale objects flushed), key recreated, the call answered`, async () => {
      const world = new World(failNth('quote', 1, row.rc));
      const { tpm, fatal } = await open(world);
      const ak = await tpm.createAk();
      const q = await tpm.quote(ak, [0], Buffer.alloc(16));
      assert.equal(q.attest.toString(), 'ctx2');
      assert.equal(tpm.reopens, 1);
      assert.equal(world.akCreated, 2);
      assert.deepEqual(fatal, []);
    });
  }

  it('a refusal a reopen does not cure (TPM_RC_HANDLE) reaches the caller at once, no reopen', async () => {
    const world = new World(failNth('readPublic', 1, RC.handle));
    const { tpm } = await open(world);
    await assert.rejects(tpm.readPublic(0x81000000), { name: 'TpmError', message: /readPublic/ });
    assert.equal(tpm.reopens, 0);
  });

  it('one call out of attempts fails alone: its caller gets an error, the TPM stays in use for everyone else', async () => {
    const world = new World((_ctx, op) => (op === 'getRandom' ? RC.tctiIo : 0));
    const { tpm, fatal } = await open(world, { attempts: 2 });
    await assert.rejects(tpm.getRandom(4), (e: Error) => {
      assert.ok(!(e instanceof TpmUnavailableError));
      assert.match(e.message, /TPM getRandom: failed 2 times in a row, each time on a context then reopened/);
      return true;
    });
    assert.deepEqual(fatal, []);
    assert.equal((await tpm.readPcrs()).size, 1);
  });

  const budgets: {
    name: string;
    /** getRandom breaks the context this many times, then answers. */
    failures: number;
    /** Other calls keep being answered meanwhile (a lossy line) or nobody is (a TPM that fails at once). */
    othersAnswered: boolean;
    maxReopensPerCall?: number;
    outcome: RegExp | 'answered';
    reopens: number;
  }[] = [
    {
      name: 'a lossy line: five failures with others answered between them cost the call nothing it needs',
      failures: 5,
      othersAnswered: true,
      outcome: 'answered',
      reopens: 5,
    },
    {
      name: 'nobody answered between its failures: the call fails alone after 3 in a row',
      failures: Number.POSITIVE_INFINITY,
      othersAnswered: false,
      outcome: /TPM getRandom: failed 3 times in a row/,
      reopens: 3,
    },
    {
      name: 'a command that breaks every context while others are answered: bounded by maxReopensPerCall',
      failures: Number.POSITIVE_INFINITY,
      othersAnswered: true,
      maxReopensPerCall: 6,
      outcome: /TPM getRandom: failed 6 times, each time on a context then reopened/,
      reopens: 6,
    },
  ];
  for (const row of budgets) {
    it(`retry budget: ${row.name}`, async () => {
      let failed = 0;
      const world = new World((_ctx, op) => (op === 'getRandom' && failed++ < row.failures ? RC.tctiIo : 0));
      const { tpm, fatal } = await open(world, { maxReopensPerCall: row.maxReopensPerCall });
      let done = false;
      const others = (async () => {
        while (row.othersAnswered && !done) await tpm.readPcrs();
      })();
      const call = tpm.getRandom(4).finally(() => {
        done = true;
      });
      if (row.outcome === 'answered') assert.equal((await call).length, 4);
      else await assert.rejects(call, row.outcome);
      await others;
      assert.equal(tpm.reopens, row.reopens);
      assert.deepEqual(fatal, [], 'one call out of its budget is never fatal');
    });
  }

  it('reopens failing in a row declare the TPM gone, once; a reopen that succeeds resets the count', async () => {
    const world = new World((_ctx, op) => (op === 'getRandom' ? RC.tctiIo : 0));
    const { tpm, fatal } = await open(world, { reopenAttempts: 3, attempts: 1 });
    world.failOpens = 2; // two failures, then an open works: not gone
    await assert.rejects(tpm.getRandom(4), /failed 1 times/);
    assert.deepEqual(fatal, []);
    world.failOpens = Number.POSITIVE_INFINITY;
    await assert.rejects(
      tpm.getRandom(4),
      (e: Error) =>
        e instanceof TpmUnavailableError && /3 reopens in a row failed, the TPM is gone/.test(e.message),
    );
    assert.equal(fatal.length, 1);
    await assert.rejects(tpm.readPcrs(), TpmUnavailableError);
    assert.equal(fatal.length, 1, 'reported once');
  });

  it('an extend lost in transit: outcome unknown; an extend ESAPI refused unsent on the old context: retried', async () => {
    const world = new World(failNth('extendPcr', 1, RC.tctiIo));
    const { tpm } = await open(world);
    await assert.rejects(tpm.extendPcr(16, Buffer.alloc(32)), TpmOutcomeUnknownError);
    // A getRandom breaks the context; the extend queued behind it is refused unsent, so it runs again.
    world.script = failNth('getRandom', 1, RC.tctiIo);
    await Promise.all([tpm.getRandom(4), tpm.extendPcr(16, Buffer.alloc(32))]);
    assert.equal(world.calls.filter((c) => c.op === 'extendPcr').at(-1)?.ctx, 3);
  });
});
