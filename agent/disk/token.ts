// The disk-mapper's LUKS2 token: whether a cluster's disk key protects the disk yet. It lives in the header, so
// "mark for reset" survives the wipe of the disk it marks.
import * as v from 'valibot';
import { parseWith, strictObject } from '../../common/schema.js';
import { DISK_TOKEN_TYPE } from './layout.js';

export type DiskState = 'uninitialized' | 'initialized';

const TokenSchema = strictObject({
  type: v.literal(DISK_TOKEN_TYPE, `expected "${DISK_TOKEN_TYPE}"`),
  keyslots: v.pipe(v.array(v.string()), v.length(0, 'expected no keyslots')),
  state: v.picklist(['uninitialized', 'initialized'], 'expected "uninitialized" or "initialized"'),
});

export function tokenJson(state: DiskState): string {
  return JSON.stringify({ type: DISK_TOKEN_TYPE, keyslots: [], state });
}

/** The state a token says; a missing token means a format that never finished. */
export function parseToken(json: string | null): DiskState {
  if (json === null) return 'uninitialized';
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new Error('LUKS2 token 0: not JSON');
  }
  try {
    return parseWith(TokenSchema, value).state;
  } catch (err) {
    throw new Error(`LUKS2 token 0: ${(err as Error).message}`);
  }
}
