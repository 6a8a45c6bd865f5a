import { hkdfSync } from 'node:crypto';
import { DISK_UUID } from './contracts/disk-id.js';

/** Sizes the master secret and its salt must have. */
export const MASTER_SECRET_BYTES = 32;
export const SALT_BYTES = 32;

export interface MasterSecret {
  key: Buffer;
  salt: Buffer;
}

function derive(secret: Uint8Array, salt: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, salt, Buffer.from(info, 'utf8'), 32));
}

export function checkMasterSecret(master: MasterSecret): void {
  if (master.key.length !== MASTER_SECRET_BYTES) {
    throw new RangeError(
      `master secret key: expected ${MASTER_SECRET_BYTES} bytes, got ${master.key.length}`,
    );
  }
  if (master.salt.length !== SALT_BYTES) {
    throw new RangeError(`master secret salt: expected ${SALT_BYTES} bytes, got ${master.salt.length}`);
  }
}

/** The secret every node of a cluster learns; it keys the cluster ID. */
export function deriveMeasurementSecret(master: MasterSecret): Buffer {
  checkMasterSecret(master);
  return derive(master.key, master.salt, 'sextant measurement secret v1');
}

/** Cluster ID = HKDF(measurement secret, measurement salt): what PCR 15 is extended with. */
export function deriveClusterId(measurementSecret: Uint8Array, measurementSalt: Uint8Array): Buffer {
  if (measurementSecret.length !== 32) throw new RangeError('measurement secret: expected 32 bytes');
  if (measurementSalt.length !== SALT_BYTES)
    throw new RangeError(`measurement salt: expected ${SALT_BYTES} bytes`);
  return derive(measurementSecret, measurementSalt, 'sextant cluster id v1');
}

/** Owner ID: identifies who holds the master secret, without revealing it. */
export function deriveOwnerId(master: MasterSecret): Buffer {
  checkMasterSecret(master);
  return derive(master.key, master.salt, 'sextant owner id v1');
}

/**
 * The key that authenticates a replaced measurements file on a control plane (HMAC-SHA256 over the file bytes):
 * only whoever holds the master secret (the operator, the cluster's JoinServices) can make one.
 */
export function deriveMeasurementsMacKey(master: MasterSecret): Buffer {
  checkMasterSecret(master);
  return derive(master.key, master.salt, 'sextant measurements mac v1');
}

/** One key per state disk, bound to its UUID. */
export function deriveDiskKey(master: MasterSecret, diskUuid: string): Buffer {
  checkMasterSecret(master);
  if (!DISK_UUID.test(diskUuid)) {
    throw new TypeError(
      `disk UUID: expected a lowercase RFC 4122 UUID, got ${JSON.stringify(diskUuid.slice(0, 64))}`,
    );
  }
  return derive(master.key, master.salt, `sextant disk key v1 ${diskUuid}`);
}
