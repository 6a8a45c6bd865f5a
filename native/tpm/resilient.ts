// A Tpm that survives I/O faults: when the TCTI or ESAPI fails (a dropped connection leaves ESAPI answering
// "function called in the wrong order" forever), or the TPM lost its objects (restarted, slots exhausted), the
// context is torn down and reopened, the keys the caller holds are recreated, and the operation retried. One
// caller's bad luck is its own: a call that runs out of attempts fails alone, and a lossy line (others answered
// between its failures) spends a larger budget than a TPM that answers nobody. The TPM is given up on (onFatal,
// so the agent exits and systemd restarts it) only when reopening it fails several times in a row, or a command
// never answers.
import {
  TPM_RC_INITIALIZE,
  TPM_RC_OBJECT_MEMORY,
  TPM_RC_REFERENCE_H0,
  TPM_RC_REFERENCE_H6,
  TPM_RC_SESSION_MEMORY,
} from './constants.js';
import type { EndorsementKey } from './ek.js';
import { baseRc, TpmError } from './errors.js';
import type { AttestationKey } from './keys.js';
import type { Quote } from './quote.js';
import type { AkAlgorithm } from './templates.js';
import { openTpm, type Tpm } from './tpm.js';

/** The TPM cannot be used any more by this process: the caller should exit and let its supervisor restart it. */
export class TpmUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TpmUnavailableError';
  }
}

/** A command that changes TPM state failed in transit: it may or may not have taken effect. */
export class TpmOutcomeUnknownError extends Error {
  constructor(operation: string, options?: { cause?: unknown }) {
    super(
      `${operation}: the TPM connection failed while the command was in flight; it may or may not have taken effect (the context was reopened)`,
      options,
    );
    this.name = 'TpmOutcomeUnknownError';
  }
}

export interface ResilientTpmOptions {
  /**
   * Reopens one operation may start in a row while the TPM answers nobody else in between, the first included
   * (default 3): a context that breaks at once, every time, on this call.
   */
  attempts?: number;
  /**
   * Reopens one operation may start in all, when the TPM answers other calls between them (default 12): a lossy
   * line costs an unlucky call a few, a command that breaks the connection every time is still bounded.
   */
  maxReopensPerCall?: number;
  /** Reopens failing in a row before the TPM is declared gone (default 5). */
  reopenAttempts?: number;
  /** A command with no answer after this long means the TPM is stuck (default 60 s). */
  commandTimeoutMs?: number;
  /** Pause before attempt n (and before reopen try n) is n × this (default 200 ms). */
  backoffMs?: number;
  /** Said once per reopen and on the fatal failure: the agent's logger. */
  notice?: (level: 'warn' | 'error', message: string) => void;
  /** Called once when the TPM is given up on; the agent exits non-zero from here. */
  onFatal?: (err: TpmUnavailableError) => void;
  open?: (tcti: string) => Promise<Tpm>;
}

// TSS2 base codes (low 16 bits) that mean the path to the TPM broke, not that the TPM refused the command.
const TRANSPORT_BASES = new Set([1, 7, 8, 9, 10, 17, 19]);
const ESAPI_LAYER = 7;
const SYS_LAYER = 8;
const TCTI_LAYER = 10;

/** True for failures in transit a fresh context cures: TCTI errors, ESAPI/SYS sequence and I/O errors. */
export function isTransportFailure(err: unknown): boolean {
  if (!(err instanceof TpmError)) return false;
  const layer = err.rc >>> 16;
  if (layer === TCTI_LAYER) return true;
  return (layer === ESAPI_LAYER || layer === SYS_LAYER) && TRANSPORT_BASES.has(err.rc & 0xffff);
}

/** TSS2_ESYS_RC_BAD_SEQUENCE: ESAPI refused the call on a context a failed command left mid-sequence. */
function isRefusedUnsent(err: unknown): boolean {
  return err instanceof TpmError && err.rc >>> 16 === ESAPI_LAYER && (err.rc & 0xffff) === 7;
}

/**
 * The TPM refused the command, before running it, for want of state a reopen restores: it was restarted under
 * us (not started, or a transient key gone: TPM_RC_REFERENCE_H0…H6), or its object or session slots are held by
 * a lost context (TPM_RC_OBJECT_MEMORY, TPM_RC_SESSION_MEMORY; a reopen flushes them).
 */
function needsFreshState(err: unknown): boolean {
  if (!(err instanceof TpmError) || err.rc >>> 16 !== 0) return false;
  const base = baseRc(err.rc);
  return (
    base === TPM_RC_INITIALIZE ||
    base === TPM_RC_OBJECT_MEMORY ||
    base === TPM_RC_SESSION_MEMORY ||
    (base >= TPM_RC_REFERENCE_H0 && base <= TPM_RC_REFERENCE_H6)
  );
}

/** Retries that start no reopen (another caller's reopen) are free while the TPM answers someone, not endless. */
const FREE_RETRIES = 64;

interface Held<T extends { handle: number; public: Buffer }> {
  recreate: (tpm: Tpm) => Promise<T>;
  real: T;
  generation: number;
  /** A recreation under way: concurrent callers share it instead of each loading a copy into a scarce slot. */
  recreating?: Promise<T>;
}

/** First virtual handle: far from ESYS_TR values, still a valid unsigned 32-bit integer. */
const VIRTUAL_BASE = 0x7e000000;

class ResilientTpm implements Tpm {
  #tpm: Tpm;
  #generation = 0;
  #reopening: Promise<void> | undefined;
  #fatal: TpmUnavailableError | undefined;
  #nextHandle = VIRTUAL_BASE;
  /** Operations and key recreations answered so far: a failure after others were answered is the line's. */
  #answered = 0;
  readonly #held = new Map<number, Held<AttestationKey> | Held<EndorsementKey>>();
  readonly #attempts: number;
  readonly #maxReopensPerCall: number;
  readonly #reopenAttempts: number;
  readonly #timeoutMs: number;
  readonly #backoffMs: number;
  readonly #notice: NonNullable<ResilientTpmOptions['notice']>;
  readonly #onFatal: NonNullable<ResilientTpmOptions['onFatal']>;
  readonly #open: (tcti: string) => Promise<Tpm>;

  constructor(
    readonly tcti: string,
    first: Tpm,
    options: ResilientTpmOptions,
  ) {
    this.#tpm = first;
    this.#attempts = Math.max(1, options.attempts ?? 3);
    this.#maxReopensPerCall = Math.max(this.#attempts, options.maxReopensPerCall ?? 12);
    this.#reopenAttempts = Math.max(1, options.reopenAttempts ?? 5);
    this.#timeoutMs = options.commandTimeoutMs ?? 60_000;
    this.#backoffMs = options.backoffMs ?? 200;
    this.#notice = options.notice ?? (() => {});
    this.#onFatal = options.onFatal ?? (() => {});
    this.#open = options.open ?? openTpm;
  }

  /** How many times the context was reopened: for tests and the agent's status. */
  get reopens(): number {
    return this.#generation;
  }

  async #run<T>(operation: string, idempotent: boolean, op: (tpm: Tpm) => Promise<T>): Promise<T> {
    let inARow = 0;
    let reopened = 0;
    let free = 0;
    let answeredAtFailure = this.#answered;
    for (;;) {
      if (this.#fatal) throw this.#fatal;
      // Nothing is issued on a context being replaced: it would only fail there and cost a retry.
      if (this.#reopening) await this.#reopening;
      const generation = this.#generation;
      let err: unknown;
      try {
        const answer = await this.#watch(operation, op(this.#tpm));
        this.#answered += 1;
        return answer;
      } catch (e) {
        err = e;
      }
      if (err instanceof TpmUnavailableError) throw err;
      const inTransit = isTransportFailure(err);
      if (!inTransit && !needsFreshState(err)) throw err;
      // ESAPI refuses a broken context's calls before sending anything: only other transit failures may have run.
      const mayHaveRun = inTransit && !isRefusedUnsent(err);
      // Someone was answered since this call last failed: the TPM works, the loss was the line's.
      const othersAnswered = this.#answered !== answeredAtFailure;
      answeredAtFailure = this.#answered;
      if (this.#generation !== generation || this.#reopening) {
        // Failed on a context another caller already replaced (or is replacing): the fault was counted there.
        free = othersAnswered ? 1 : free + 1;
        if (free > FREE_RETRIES) throw err;
        if (!idempotent && mayHaveRun) throw new TpmOutcomeUnknownError(operation, { cause: err });
        continue;
      }
      inARow = othersAnswered ? 1 : inARow + 1;
      reopened += 1;
      this.#notice(
        'warn',
        `TPM ${operation} failed (${(err as Error).message}); reopening the TPM context (attempt ${inARow} of ${this.#attempts} in a row, ${reopened} of ${this.#maxReopensPerCall} in all for this call)`,
      );
      await this.#reopen(generation);
      // A refused command did not run; one lost in transit may have.
      if (!idempotent && mayHaveRun) throw new TpmOutcomeUnknownError(operation, { cause: err });
      if (inARow >= this.#attempts || reopened >= this.#maxReopensPerCall) {
        const how = inARow >= this.#attempts ? `${inARow} times in a row` : `${reopened} times`;
        throw new Error(
          `TPM ${operation}: failed ${how}, each time on a context then reopened (the TPM works on; retry the request): ${(err as Error).message}`,
          { cause: err },
        );
      }
      await new Promise((r) => setTimeout(r, this.#backoffMs * inARow));
    }
  }

  /** A command that never answers cannot be cancelled (its ESAPI call blocks a worker thread): that is fatal. */
  #watch<T>(operation: string, pending: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(this.#giveUp(`TPM ${operation}: no answer within ${this.#timeoutMs} ms (the TPM is stuck)`)),
        this.#timeoutMs,
      );
      timer.unref();
    });
    return Promise.race([pending, timeout]).finally(() => clearTimeout(timer));
  }

  #giveUp(message: string, cause?: unknown): TpmUnavailableError {
    if (this.#fatal) return this.#fatal;
    this.#fatal = new TpmUnavailableError(message, { cause });
    this.#notice('error', message);
    this.#onFatal(this.#fatal);
    return this.#fatal;
  }

  /**
   * One reopen at a time, shared by every caller that failed on `failedGeneration`. It succeeds or, after
   * `reopenAttempts` failed opens in a row, declares the TPM gone.
   */
  #reopen(failedGeneration: number): Promise<void> {
    if (this.#generation !== failedGeneration) return Promise.resolve();
    this.#reopening ??= (async () => {
      // The old context is beyond use: finalizing it is all close() can still do.
      await this.#tpm.close().catch(() => {});
      for (let tries = 1; ; tries++) {
        try {
          this.#tpm = await this.#open(this.tcti);
          break;
        } catch (err) {
          if (tries >= this.#reopenAttempts) {
            throw this.#giveUp(
              `TPM at "${this.tcti}": ${tries} reopens in a row failed, the TPM is gone: ${(err as Error).message}`,
              err,
            );
          }
          this.#notice(
            'warn',
            `TPM reopen ${tries} of ${this.#reopenAttempts} failed: ${(err as Error).message}`,
          );
          await new Promise((r) => setTimeout(r, this.#backoffMs * tries));
        }
      }
      this.#generation += 1;
      this.#notice(
        'warn',
        `TPM context reopened (${this.#generation} so far); keys are recreated on next use`,
      );
    })().finally(() => {
      this.#reopening = undefined;
    });
    return this.#reopening;
  }

  /** The key a caller holds, loaded in the current context (recreated after a reopen, and checked to be the same). */
  async #real<T extends AttestationKey | EndorsementKey>(tpm: Tpm, key: T, what: string): Promise<T> {
    const held = this.#held.get(key.handle) as Held<T> | undefined;
    if (!held) return key;
    const generation = this.#generation;
    if (held.generation === generation) return held.real;
    held.recreating ??= held
      .recreate(tpm)
      .then((again) => {
        if (!again.public.equals(held.real.public)) {
          throw this.#giveUp(`${what} recreated after a TPM reopen differs from the original`);
        }
        held.real = again;
        held.generation = generation;
        this.#answered += 1;
        return again;
      })
      .finally(() => {
        held.recreating = undefined;
      });
    return held.recreating;
  }

  #hold<T extends AttestationKey | EndorsementKey>(real: T, recreate: (tpm: Tpm) => Promise<T>): T {
    const handle = this.#nextHandle++;
    this.#held.set(handle, {
      real,
      recreate,
      generation: this.#generation,
    } as unknown as Held<AttestationKey>);
    return { ...real, handle };
  }

  getRandom(bytes: number): Promise<Buffer> {
    return this.#run('getRandom', true, (t) => t.getRandom(bytes));
  }

  readPcrs(indices?: readonly number[]): Promise<Map<number, Buffer>> {
    return this.#run('readPcrs', true, (t) => t.readPcrs(indices));
  }

  extendPcr(index: number, digest: Buffer): Promise<void> {
    return this.#run('extendPcr', false, (t) => t.extendPcr(index, digest));
  }

  pcrEvent(index: number, data: Buffer): Promise<void> {
    return this.#run('pcrEvent', false, (t) => t.pcrEvent(index, data));
  }

  async createAk(algorithm: AkAlgorithm = 'ecc'): Promise<AttestationKey> {
    const recreate = (t: Tpm) => t.createAk(algorithm);
    return this.#hold(await this.#run('createAk', true, recreate), recreate);
  }

  readPublic(handle: number): Promise<{ public: Buffer; name: Buffer }> {
    return this.#run('readPublic', true, async (t) => {
      const held = this.#held.get(handle);
      return t.readPublic(held ? (await this.#real(t, held.real, 'key')).handle : handle);
    });
  }

  quote(ak: AttestationKey, pcrs: readonly number[], qualifyingData: Buffer): Promise<Quote> {
    return this.#run('quote', true, async (t) =>
      t.quote(await this.#real(t, ak, 'AK'), pcrs, qualifyingData),
    );
  }

  async readEndorsementKey(): Promise<EndorsementKey> {
    const recreate = (t: Tpm) => t.readEndorsementKey();
    return this.#hold(await this.#run('readEndorsementKey', true, recreate), recreate);
  }

  activateCredential(
    ak: AttestationKey,
    ek: EndorsementKey,
    credentialBlob: Buffer,
    encryptedSecret: Buffer,
  ): Promise<Buffer> {
    return this.#run('activateCredential', true, async (t) =>
      t.activateCredential(
        await this.#real(t, ak, 'AK'),
        await this.#real(t, ek, 'EK'),
        credentialBlob,
        encryptedSecret,
      ),
    );
  }

  async flush(handle: number): Promise<void> {
    const held = this.#held.get(handle);
    if (!held) return this.#run('flush', true, (t) => t.flush(handle));
    this.#held.delete(handle);
    // A key from an earlier context went with it; only one loaded now needs flushing.
    if (held.generation === this.#generation && !this.#fatal) await this.#tpm.flush(held.real.handle);
  }

  async close(): Promise<void> {
    await this.#reopening?.catch(() => {});
    return this.#tpm.close();
  }
}

export type { ResilientTpm };

/**
 * Opens the TPM behind `tcti` wrapped so that I/O faults reopen the context (see the file comment). Leftovers of
 * an earlier process or context (transient objects, sessions) are flushed on every open.
 */
export async function openResilientTpm(
  tcti: string,
  options: ResilientTpmOptions = {},
): Promise<Tpm & { readonly reopens: number }> {
  const open = options.open ?? ((t: string) => openTpm(t, { flushStale: true }));
  return new ResilientTpm(tcti, await open(tcti), { ...options, open });
}
