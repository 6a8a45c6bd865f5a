// What a log field may show, and how it is named in the journal.

export const REDACTED = '[redacted]';

// Defence in depth: callers must not log secrets, but a field named like one is never printed.
const SECRET_KEY = /secret|key|token|passw(or)?d|credential/i;

export type SafeValue = string | number | boolean;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/** The printable form of one field value, or undefined to drop the field. */
export function safeValue(key: string, value: unknown): SafeValue | undefined {
  if (value === undefined) return undefined;
  if (isSecretKey(key)) return REDACTED;
  if (value instanceof Uint8Array || value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
    // Bytes are key material far more often than not; only their size is shown.
    return `[${value.byteLength} bytes]`;
  }
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return value.message;
  if (value === null) return 'null';
  return String(value);
}

// Fields journald or systemd tooling give a meaning of their own; ours must not shadow them.
const RESERVED = new Set([
  'MESSAGE',
  'MESSAGE_ID',
  'PRIORITY',
  'CODE_FILE',
  'CODE_LINE',
  'CODE_FUNC',
  'ERRNO',
  'INVOCATION_ID',
  'USER_INVOCATION_ID',
  'SYSLOG_FACILITY',
  'SYSLOG_IDENTIFIER',
  'SYSLOG_PID',
  'SYSLOG_TIMESTAMP',
  'SYSLOG_RAW',
  'DOCUMENTATION',
  'TID',
  'UNIT',
  'USER_UNIT',
  'OBJECT_PID',
  'COREDUMP_UNIT',
  'COREDUMP_USER_UNIT',
]);

/**
 * Journal field name for a log field key: camelCase split at humps, upper-cased, anything outside [A-Z0-9_]
 * turned into '_'. Keys that would collide with a systemd field, start with a digit or are empty get the
 * SEXTANT_ prefix (nothing left: SEXTANT_FIELD): `clusterId` → CLUSTER_ID, `message` → SEXTANT_MESSAGE, `2fa` → SEXTANT_2FA.
 */
export function journalFieldName(key: string): string {
  let name = key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase()
    .replace(/[^A-Z0-9_]/g, '_')
    .replace(/^_+/, '');
  if (name === '') name = 'SEXTANT_FIELD';
  else if (/^[0-9]/.test(name) || RESERVED.has(name)) name = `SEXTANT_${name}`;
  return name.slice(0, 64);
}
