// The one LUKS2 layout a Sextant state disk has: what the disk-mapper formats and what the header allowlist accepts.
import type { FormatOptions } from '../../native/cryptsetup/device.js';

export interface DiskLayout {
  format: Omit<FormatOptions, 'uuid'>;
  /** A full wipe after format gives every sector a valid integrity tag (unwritten sectors fail their tags). */
  wipe: boolean;
  /** The data segment's offset in bytes: the header (16 MiB of JSON + keyslots) before it. */
  dataOffset: number;
  jsonSize: number;
  keyslotsSize: number;
  /** Keyslots a disk may have: 0 (the derived disk key) and 1 (reserved for the TPM-sealed key). */
  keyslots: readonly number[];
}

/**
 * aes-xts-plain64 + hmac(sha256) (dm-integrity, 64 + 32 key bytes), 4K sectors, minimal PBKDF2: the keys are 32
 * random or HKDF-derived bytes, so a slow KDF adds only unlock time (argon2id: 2.4–6 s per unlock under TCG).
 */
export const STATE_DISK_LAYOUT: DiskLayout = {
  format: {
    cipher: 'aes',
    cipherMode: 'xts-plain64',
    volumeKeyBytes: 96,
    integrity: 'hmac(sha256)',
    sectorSize: 4096,
    pbkdf: { type: 'pbkdf2', hash: 'sha256', iterations: 1000 },
    label: 'sextant-state',
  },
  wipe: true,
  dataOffset: 16 * 1024 * 1024,
  jsonSize: 12288,
  keyslotsSize: 16744448,
  keyslots: [0, 1],
};

/** The LUKS2 token the disk-mapper keeps in slot 0: whether a cluster's disk key protects the disk yet. */
export const DISK_TOKEN_TYPE = 'sextant-disk';
export const DISK_TOKEN_SLOT = 0;
