// libsystemd.so.0 through koffi, loaded on first use so that hosts without systemd (CI, containers, the CLI's
// machine) never pay for it or fail at import.
import { createRequire } from 'node:module';

export interface SystemdLibrary {
  /** int sd_journal_sendv(const struct iovec *iov, int n) */
  sdJournalSendv(iov: { iov_base: Buffer; iov_len: number }[], n: number): number;
  /** int sd_notify(int unset_environment, const char *state) */
  sdNotify(unsetEnvironment: number, state: string): number;
}

export type LibraryState = { ok: true; lib: SystemdLibrary } | { ok: false; reason: string };

const LIBRARY_NAME = 'libsystemd.so.0';
let state: LibraryState | undefined;

/** Loads libsystemd once; the outcome (the binding, or why it is unavailable) is cached for the process. */
export function loadSystemd(): LibraryState {
  if (state === undefined) state = tryLoad();
  return state;
}

function tryLoad(): LibraryState {
  try {
    // koffi is CommonJS with a native part; require keeps the load synchronous and lazy.
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const lib = koffi.load(LIBRARY_NAME);
    koffi.struct('sextant_iovec', { iov_base: 'void *', iov_len: 'size_t' });
    const sendv = lib.func('int sd_journal_sendv(const sextant_iovec *iov, int n)');
    const notify = lib.func('int sd_notify(int unset_environment, const char *state)');
    return {
      ok: true,
      lib: {
        sdJournalSendv: (iov, n) => sendv(iov, n) as number,
        sdNotify: (unset, s) => notify(unset, s) as number,
      },
    };
  } catch (err) {
    return { ok: false, reason: `cannot load ${LIBRARY_NAME}: ${(err as Error).message}` };
  }
}
