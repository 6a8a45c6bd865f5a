// Native journal protocol through libsystemd's sd_journal_sendv: one datagram per entry, fields as "KEY=value".
// libsystemd handles values with newlines or binary data (length-prefixed form) and large entries (memfd).
import { existsSync } from 'node:fs';
import { loadSystemd } from './library.js';

export const JOURNAL_SOCKET = '/run/systemd/journal/socket';

// journald rejects names that are not [A-Z0-9_], start with a digit or '_' (trusted fields), or exceed 64 bytes.
const FIELD_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;

/** True when a journald socket exists and libsystemd can be loaded, i.e. sendJournal can deliver. */
export function journalAvailable(): boolean {
  return journalUnavailableReason() === undefined;
}

/** Why the journal cannot be used here, or undefined when it can. */
export function journalUnavailableReason(): string | undefined {
  if (!existsSync(JOURNAL_SOCKET)) return `journal socket ${JOURNAL_SOCKET} does not exist`;
  const lib = loadSystemd();
  return lib.ok ? undefined : lib.reason;
}

/**
 * Sends one journal entry. Returns sd_journal_sendv's rc: 0 on success (also when no journald listens, as
 * libsystemd fails silently then), a negative errno otherwise. Throws when a field name is not a valid journal
 * field name or libsystemd cannot be loaded.
 */
export function sendJournal(fields: Record<string, string>): number {
  const lib = loadSystemd();
  if (!lib.ok) throw new Error(`journal unavailable: ${lib.reason}`);
  const iov: { iov_base: Buffer; iov_len: number }[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (!FIELD_NAME.test(key)) {
      throw new Error(`journal field name ${JSON.stringify(key)} is invalid: expected [A-Z][A-Z0-9_]{0,63}`);
    }
    const buf = Buffer.from(`${key}=${value}`, 'utf8');
    iov.push({ iov_base: buf, iov_len: buf.length });
  }
  if (iov.length === 0) throw new Error('journal entry has no fields: expected at least MESSAGE');
  return lib.lib.sdJournalSendv(iov, iov.length);
}
