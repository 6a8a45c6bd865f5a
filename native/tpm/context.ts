// One ESYS context: its TCTI, a promise queue that serializes every call (ESYS_CONTEXT is not thread safe,
// and koffi `.async` runs calls on worker threads), and the objects still loaded in the TPM.
import { TPM_RC_INITIALIZE, TPM2_SU_CLEAR } from './constants.js';
import { baseRc, check, decodeRc, TpmError } from './errors.js';
import { fn, type Pointer } from './library.js';

/** TSS2_TCTI_RC_LAYER >> 16 */
const TCTI_LAYER = 0x0a;

type AsyncFn = { async: (...args: unknown[]) => void };

/** Runs a koffi function on a worker thread so the event loop keeps turning during TPM round trips. */
export function callAsync<R = number>(f: AsyncFn, ...args: unknown[]): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    f.async(...args, (err: unknown, result: R) => (err ? reject(err) : resolve(result)));
  });
}

export class EsysContext {
  readonly tcti: string;
  /** Transient objects and sessions this context created: swtpm has no resource manager and 3 object slots. */
  readonly transients = new Set<number>();
  /** ESYS_TRs for persistent objects (e.g. the EK at 0x81010001): closed, never flushed. */
  readonly persistents = new Set<number>();
  private ctx: Pointer;
  private tctiCtx: Pointer;
  private queue: Promise<unknown> = Promise.resolve();
  private closing = false;

  private constructor(tcti: string, tctiCtx: Pointer, ctx: Pointer) {
    this.tcti = tcti;
    this.tctiCtx = tctiCtx;
    this.ctx = ctx;
  }

  static async open(tcti: string): Promise<EsysContext> {
    const tctiOut: [Pointer] = [null];
    const trc = await callAsync(fn.TctiLdr_Initialize, tcti, tctiOut);
    if (trc !== 0) throw new TpmError('open', trc, openMessage(tcti, trc));
    const ctxOut: [Pointer] = [null];
    const erc = await callAsync(fn.Esys_Initialize, ctxOut, tctiOut[0], null);
    if (erc !== 0) {
      fn.TctiLdr_Finalize([tctiOut[0]]);
      throw new TpmError('open', erc, openMessage(tcti, erc));
    }
    const context = new EsysContext(tcti, tctiOut[0], ctxOut[0]);
    // Startup(CLEAR) is needed on a TPM nobody started; one that is running answers TPM_RC_INITIALIZE.
    const src = await callAsync(fn.Esys_Startup, context.ctx, TPM2_SU_CLEAR);
    if (src !== 0 && baseRc(src) !== TPM_RC_INITIALIZE) {
      context.finalize();
      throw new TpmError('open', src, openMessage(tcti, src));
    }
    return context;
  }

  /**
   * Flushes transient objects and sessions a lost context left loaded. A TPM behind a resource manager
   * (/dev/tpmrm0) shows a new connection none; a raw one (swtpm, 3 object slots) keeps them until flushed, and a
   * context reopened after an I/O fault would otherwise run out of slots.
   */
  async flushStale(): Promise<number> {
    let flushed = 0;
    const ranges = [0x80000000, 0x02000000, 0x03000000];
    for (const base of ranges) {
      for (let i = 0; i < 8; i++) {
        const out: [number] = [0];
        const rc = await callAsync<number>(
          fn.Esys_TR_FromTPMPublic,
          this.ctx,
          base + i,
          0xfff,
          0xfff,
          0xfff,
          out,
        );
        if (rc !== 0) continue;
        const frc = await callAsync<number>(fn.Esys_FlushContext, this.ctx, out[0]);
        if (frc === 0) flushed += 1;
        else await callAsync<number>(fn.Esys_TR_Close, this.ctx, out);
      }
    }
    return flushed;
  }

  get closed(): boolean {
    return this.closing;
  }

  /** Throws before anything reaches the TPM when the context was closed. */
  assertOpen(operation: string): void {
    if (this.closing) throw new TypeError(`${operation}: the TPM at "${this.tcti}" is closed`);
  }

  /** Serializes `op` behind every earlier operation on this context. */
  run<T>(operation: string, op: (ctx: Pointer) => Promise<T>): Promise<T> {
    this.assertOpen(operation);
    const result = this.queue.then(() => op(this.ctx));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** One ESYS call on the worker pool; a non-zero rc becomes a TpmError naming `operation`. */
  async esys(operation: string, f: AsyncFn, ...args: unknown[]): Promise<void> {
    check(operation, await callAsync<number>(f, ...args));
  }

  /** Frees every ESYS-allocated output, including the ones the caller does not use. */
  free(...pointers: Pointer[]): void {
    for (const p of pointers) if (p) fn.Esys_Free(p);
  }

  async flush(handle: number): Promise<void> {
    if (this.persistents.has(handle)) {
      await this.esys('flush (Esys_TR_Close)', fn.Esys_TR_Close, this.ctx, [handle]);
      this.persistents.delete(handle);
      return;
    }
    await this.esys('flush (Esys_FlushContext)', fn.Esys_FlushContext, this.ctx, handle);
    this.transients.delete(handle);
  }

  /** Flushes what is still loaded, then finalizes ESYS and the TCTI. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.queue.then(() => undefined);
    const result = this.queue.then(async () => {
      const errors: unknown[] = [];
      for (const handle of [...this.transients, ...this.persistents]) {
        try {
          await this.flush(handle);
        } catch (err) {
          // A TPM that is gone (TCTI layer error) holds nothing to flush any more.
          if (!(err instanceof TpmError && err.rc >>> 16 === TCTI_LAYER)) errors.push(err);
          this.transients.delete(handle);
          this.persistents.delete(handle);
        }
      }
      this.finalize();
      if (errors.length > 0) throw errors[0];
    });
    this.closing = true;
    this.queue = result.catch(() => undefined);
    return result;
  }

  private finalize(): void {
    if (this.ctx) fn.Esys_Finalize([this.ctx]);
    if (this.tctiCtx) fn.TctiLdr_Finalize([this.tctiCtx]);
    this.ctx = null;
    this.tctiCtx = null;
  }
}

// TSS2 base codes (the low 16 bits of a TCTI/ESYS rc) that say why a TPM could not be opened.
const NO_CONNECTION = 8;
const IO_ERROR = 10;
const BAD_VALUE = 11;
const NOT_IMPLEMENTED = 2;
const NOT_SUPPORTED = 21;

function openMessage(tcti: string, rc: number): string {
  const base = rc & 0xffff;
  let hint = '';
  if (base === IO_ERROR || base === NO_CONNECTION) {
    hint = /^(swtpm|mssim)/.test(tcti)
      ? ': connection refused (is the simulator listening on that host and port?)'
      : ': no such device, or it cannot be opened';
  } else if (base === BAD_VALUE) {
    hint =
      ': malformed TCTI configuration (expected e.g. "swtpm:host=127.0.0.1,port=2321" or "device:/dev/tpmrm0")';
  } else if (base === NOT_SUPPORTED || base === NOT_IMPLEMENTED) {
    hint = ': unknown TCTI name (expected device, swtpm, mssim, tabrmd, ...)';
  }
  return `cannot open TPM at "${tcti}": ${decodeRc(rc)}${hint}`;
}
