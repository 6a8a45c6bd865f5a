// A Tpm that survives I/O faults: when the TCTI or ESAPI fails (a dropped connection leaves ESAPI answering
// "function called in the wrong order" forever), the context is torn down and reopened, the keys the caller
// holds are recreated, and the operation retried a bounded number of times. What it cannot recover it reports
// once, through onFatal, so the agent exits and systemd restarts it rather than running on without a TPM.
import { TPM_RC_INITIALIZE } from './constants.js';
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
  /** Attempts per operation, the first included (default 3). */
  attempts?: number;
  /** A command with no answer after this long means the TPM is stuck (default 60 s). */
  commandTimeoutMs?: number;
  /** Pause before attempt n is n × this (default 200 ms). */
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

/** True for failures a fresh context can cure: TCTI errors, ESAPI/SYS sequence and I/O errors, a TPM restarted. */
export function isTransportFailure(err: unknown): boolean {
  if (!(err instanceof TpmError)) return false;
  const layer = err.rc >>> 16;
  if (layer === TCTI_LAYER) return true;
  if ((layer === ESAPI_LAYER || layer === SYS_LAYER) && TRANSPORT_BASES.has(err.rc & 0xffff)) return true;
  return layer === 0 && baseRc(err.rc) === TPM_RC_INITIALIZE;
}

interface Held<T extends { handle: number; public: Buffer }> {
  recreate: (tpm: Tpm) => Promise<T>;
  real: T;
  generation: number;
}

/** First virtual handle: far from ESYS_TR values, still a valid unsigned 32-bit integer. */
const VIRTUAL_BASE = 0x7e000000;

class ResilientTpm implements Tpm {
  #tpm: Tpm;
  #generation = 0;
  #reopening: Promise<void> | undefined;
  /** The current context failed in transit and no reopen has succeeded since. */
  #broken = false;
  #fatal: TpmUnavailableError | undefined;
  #nextHandle = VIRTUAL_BASE;
  readonly #held = new Map<number, Held<AttestationKey> | Held<EndorsementKey>>();
  readonly #attempts: number;
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
    for (let attempt = 1; ; attempt++) {
      if (this.#fatal) throw this.#fatal;
      const generation = this.#generation;
      let err: unknown;
      try {
        // A reopen that failed earlier is tried again first: the old context is gone either way.
        if (this.#broken) await this.#reopen(generation);
        return await this.#watch(operation, op(this.#tpm));
      } catch (e) {
        err = e;
      }
      if (err instanceof TpmUnavailableError) throw err;
      if (!this.#broken && this.#generation === generation) {
        if (!isTransportFailure(err)) throw err;
        this.#notice(
          'warn',
          `TPM ${operation} failed in transit (${(err as Error).message}); reopening the TPM context`,
        );
        this.#broken = true;
        try {
          await this.#reopen(generation);
        } catch (reopenErr) {
          err = reopenErr;
        }
        if (!idempotent) throw new TpmOutcomeUnknownError(operation, { cause: err });
      }
      if (attempt >= this.#attempts) {
        throw this.#giveUp(
          `TPM ${operation}: still failing after ${attempt} attempts and context reopens: ${(err as Error).message}`,
          err,
        );
      }
      await new Promise((r) => setTimeout(r, this.#backoffMs * attempt));
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

  /** One reopen at a time; callers that failed on the same generation share it. */
  #reopen(failedGeneration: number): Promise<void> {
    if (this.#generation !== failedGeneration && !this.#broken) return Promise.resolve();
    this.#reopening ??= (async () => {
      // The old context is beyond use: finalizing it is all close() can still do.
      await this.#tpm.close().catch(() => {});
      this.#tpm = await this.#open(this.tcti);
      this.#generation += 1;
      this.#broken = false;
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
    if (held.generation !== this.#generation) {
      const again = await held.recreate(tpm);
      if (!again.public.equals(held.real.public)) {
        throw this.#giveUp(`${what} recreated after a TPM reopen differs from the original`);
      }
      held.real = again;
      held.generation = this.#generation;
    }
    return held.real;
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

  close(): Promise<void> {
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
