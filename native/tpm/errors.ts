// Every TSS2 return code becomes a TpmError naming the operation and the decoded code.
import { fn } from './library.js';

export function decodeRc(rc: number): string {
  try {
    return String(fn.RC_Decode(rc >>> 0));
  } catch {
    return `0x${(rc >>> 0).toString(16)}`;
  }
}

export class TpmError extends Error {
  readonly operation: string;
  readonly rc: number;
  readonly rcText: string;

  constructor(operation: string, rc: number, message?: string) {
    const rcText = decodeRc(rc);
    super(message ?? `${operation} failed: ${rcText} (rc 0x${(rc >>> 0).toString(16)})`);
    this.name = 'TpmError';
    this.operation = operation;
    this.rc = rc >>> 0;
    this.rcText = rcText;
  }
}

/** Throws a TpmError for any non-zero return code. */
export function check(operation: string, rc: number): void {
  if (rc !== 0) throw new TpmError(operation, rc);
}

/** The TPM format-one/format-zero code without handle/session/parameter numbers, e.g. 0x18b -> TPM_RC_HANDLE. */
export function baseRc(rc: number): number {
  const code = rc & 0xfff;
  return code & 0x80 ? code & 0xbf : code;
}
