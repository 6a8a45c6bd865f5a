// sextant-inventory.json: {"serial": N}, the serial of the last inventory this workspace signed. Every re-sign takes
// the next one, so a JoinService that has seen an inventory refuses every one signed before it.

import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { readOptional, WorkspaceError } from './paths.js';

export const INVENTORY_SERIAL_FILE = 'sextant-inventory.json';

/** The serial the last signed inventory carried; 0 when the workspace has signed none. */
export async function lastInventorySerial(dir: string): Promise<number> {
  const bytes = await readOptional(join(resolve(dir), INVENTORY_SERIAL_FILE), INVENTORY_SERIAL_FILE);
  if (bytes === undefined) return 0;
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new WorkspaceError(INVENTORY_SERIAL_FILE, 'not valid JSON: expected {"serial": N}');
  }
  const fields = typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? Object.keys(doc) : [];
  const serial = (doc as { serial?: unknown } | null)?.serial;
  if (fields.length !== 1 || typeof serial !== 'number' || !Number.isSafeInteger(serial) || serial < 0) {
    throw new WorkspaceError(
      INVENTORY_SERIAL_FILE,
      '"serial": expected a non-negative integer, as {"serial": N}',
    );
  }
  return serial;
}

/**
 * The serial for the inventory about to be signed: one above the last, written before it is used, so a signing that
 * fails midway leaves a gap rather than two inventories with one serial.
 */
export async function nextInventorySerial(dir: string): Promise<number> {
  const serial = (await lastInventorySerial(dir)) + 1;
  await writeFileAtomic(join(resolve(dir), INVENTORY_SERIAL_FILE), `${JSON.stringify({ serial })}\n`, {
    mode: 0o600,
  });
  return serial;
}
