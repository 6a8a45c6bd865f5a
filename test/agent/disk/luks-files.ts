// LUKS2 files for the disk tests: real headers written by libcryptsetup, and the host's move of rewriting one (new
// JSON, valid checksums in both header copies), which is what a swapped header on a real disk looks like.
import { createHash } from 'node:crypto';
import { open, truncate, writeFile } from 'node:fs/promises';
import type { Mapping } from '../../../agent/disk/disk-mapper.js';
import { type DiskLayout, STATE_DISK_LAYOUT } from '../../../agent/disk/layout.js';
import type { CryptDevice } from '../../../native/cryptsetup/device.js';

// Without device-mapper no integrity format here; everything else is the production layout.
export const HOST_LAYOUT: DiskLayout = {
  ...STATE_DISK_LAYOUT,
  format: { ...STATE_DISK_LAYOUT.format, integrity: null, volumeKeyBytes: 64 },
  wipe: false,
};

/** The one neighbour swapped (this host has no device-mapper): checks the key against the real header as activation would. */
export class KeyCheckMapping implements Mapping {
  opened: string[] = [];
  wiped: string[] = [];
  closed: string[] = [];
  async open(device: CryptDevice, name: string, passphrase: Buffer): Promise<string> {
    await device.activateByPassphrase(null, 0, passphrase);
    this.opened.push(name);
    return `/dev/mapper/${name}`;
  }
  async wipe(_device: CryptDevice, path: string): Promise<void> {
    this.wiped.push(path);
  }
  async close(_device: CryptDevice, name: string): Promise<void> {
    this.closed.push(name);
  }
}

/** A sparse file of `mib` MiB, all zeros: a blank disk. */
export async function blankDisk(path: string, mib = 20): Promise<string> {
  await writeFile(path, '');
  await truncate(path, mib * 1024 * 1024);
  return path;
}

// biome-ignore lint/suspicious/noExplicitAny: the header JSON is mutated freely, that is the point
export type HeaderJson = any;

/** Rewrites the JSON of both LUKS2 header copies of `path` with `mutate`, with a higher seqid and valid checksums. */
export async function rewriteHeaderJson(path: string, mutate: (header: HeaderJson) => void): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    const first = Buffer.alloc(4096);
    await handle.read(first, 0, 4096, 0);
    const hdrSize = Number(first.readBigUInt64BE(8));
    for (const offset of [0, hdrSize]) {
      const hdr = Buffer.alloc(hdrSize);
      await handle.read(hdr, 0, hdrSize, offset);
      const area = hdr.subarray(4096);
      const end = area.indexOf(0);
      const header = JSON.parse(area.subarray(0, end).toString('utf8'));
      mutate(header);
      const json = Buffer.from(JSON.stringify(header), 'utf8');
      if (json.length >= area.length) throw new Error('rewritten header JSON does not fit its area');
      area.fill(0);
      json.copy(area);
      hdr.writeBigUInt64BE(hdr.readBigUInt64BE(16) + 1n, 16); // seqid
      hdr.fill(0, 448, 512); // csum
      createHash('sha256').update(hdr).digest().copy(hdr, 448);
      await handle.write(hdr, 0, hdrSize, offset);
    }
  } finally {
    await handle.close();
  }
}

/** SHA-256 of the first `bytes` of `path`: the header region, to show a refused operation left it alone. */
export async function digestOf(path: string, bytes = 16 * 1024 * 1024): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    await handle.read(buf, 0, bytes, 0);
    return createHash('sha256').update(buf).digest('hex');
  } finally {
    await handle.close();
  }
}
