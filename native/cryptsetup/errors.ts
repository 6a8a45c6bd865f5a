// libcryptsetup returns -errno; its log lines say what went wrong. Both go into one error that names the operation.
import { constants } from 'node:os';

const NAMES = new Map<number, string>(Object.entries(constants.errno).map(([name, value]) => [value, name]));

export class CryptError extends Error {
  /** The positive errno libcryptsetup returned negated (EPERM: no keyslot matched the passphrase). */
  readonly errno: number;
  readonly code: string;

  constructor(operation: string, errno: number, logged: readonly string[] = []) {
    const code = NAMES.get(errno) ?? `errno ${errno}`;
    const detail = logged.length > 0 ? `: ${logged.join('; ')}` : '';
    super(`cryptsetup ${operation} failed (${code})${detail}`);
    this.name = 'CryptError';
    this.errno = errno;
    this.code = code;
  }
}
