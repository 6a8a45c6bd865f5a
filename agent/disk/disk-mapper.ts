// The disk-mapper: the node's state disk from blank to opened. Every open goes through a detached copy of the header
// that passed the allowlist (header-policy.ts), and every header change is made on that copy and written back, so
// the host never gets to swap the header between the check and its use.
import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DISK_UUID } from '../../common/contracts/disk-id.js';
import { CryptDevice } from '../../native/cryptsetup/device.js';
import { CryptError } from '../../native/cryptsetup/errors.js';
import { WrongDiskKeyError } from './errors.js';
import { checkHeader, HeaderRefusedError, headerDifferences } from './header-policy.js';
import { DISK_TOKEN_SLOT, type DiskLayout, STATE_DISK_LAYOUT } from './layout.js';
import { type DiskState, parseToken, tokenJson } from './token.js';

/** The device-mapper side, swapped for a key check in tests (this host has no device-mapper). */
export interface Mapping {
  /** Opens `device` as `name` with the key in keyslot 0; returns the mapping's path. */
  open(device: CryptDevice, name: string, passphrase: Buffer): Promise<string>;
  /** Zeroes the whole opened mapping (on dm-integrity every sector then has a valid tag). */
  wipe(device: CryptDevice, mappingPath: string): Promise<void>;
  close(device: CryptDevice, name: string): Promise<void>;
}

const WIPE_BLOCK = 64 * 1024 * 1024;

export const deviceMapper: Mapping = {
  async open(device, name, passphrase) {
    await device.activateByPassphrase(name, 0, passphrase);
    return `/dev/mapper/${name}`;
  },
  wipe: (device, mappingPath) =>
    device.wipe({ devPath: mappingPath, offset: 0n, length: 0n, blockBytes: WIPE_BLOCK }),
  close: (device, name) => device.deactivate(name),
};

export { WrongDiskKeyError } from './errors.js';

export type Prepared =
  /** Formatted (a first boot, or a reboot before init/join finished) and open with a random key. */
  | { kind: 'fresh'; uuid: string; path: string }
  /** Protected by a cluster's disk key: the rejoin ticket's key opens it. */
  | { kind: 'initialized'; uuid: string };

export interface DiskMapperOptions {
  /** The raw state disk (/dev/vdb), or a file in tests. */
  disk: string;
  /** Where the checked header copy lives: a tmpfs the host cannot reach (/run/sextant/disk). */
  workDir: string;
  /** The mapping's name under /dev/mapper. */
  name: string;
  layout?: DiskLayout;
  mapping?: Mapping;
}

const LUKS_MAGIC = Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]);

export class DiskMapper {
  readonly disk: string;
  private readonly copyPath: string;
  private readonly name: string;
  private readonly layout: DiskLayout;
  private readonly mapping: Mapping;
  /** The random key of a fresh format, until commit replaces it: memory only, a reboot formats again. */
  private pending: Buffer | null = null;
  private opened: CryptDevice | null = null;

  constructor(opts: DiskMapperOptions) {
    this.disk = opts.disk;
    this.copyPath = join(opts.workDir, 'header.luks2');
    this.name = opts.name;
    this.layout = opts.layout ?? STATE_DISK_LAYOUT;
    this.mapping = opts.mapping ?? deviceMapper;
  }

  /**
   * The boot's first disk step: a blank disk, or one whose token says uninitialized, is formatted (keeping its
   * UUID, the disk ID a JoinService may already know) and opened with a fresh random key; an initialized one is
   * checked and left closed for the rejoin key.
   */
  async prepare(): Promise<Prepared> {
    const checked = await this.checkedCopy();
    let uuid: string | undefined;
    if (checked !== null) {
      try {
        uuid = await checked.uuid();
        const state = parseToken(await checked.tokenJson(DISK_TOKEN_SLOT));
        if (state === 'initialized') return { kind: 'initialized', uuid };
      } finally {
        await checked.free();
      }
    }
    return { kind: 'fresh', ...(await this.format(uuid)) };
  }

  private async format(uuid: string | undefined): Promise<{ uuid: string; path: string }> {
    const passphrase = randomBytes(32);
    const raw = await CryptDevice.init(this.disk);
    try {
      await raw.format({ ...this.layout.format, ...(uuid === undefined ? {} : { uuid }) });
      await raw.addKeyslotByVolumeKey(0, passphrase);
      await raw.setTokenJson(DISK_TOKEN_SLOT, tokenJson('uninitialized'));
    } finally {
      await raw.free();
    }
    const device = await this.checkedCopyOrRefuse();
    let path: string;
    try {
      path = await this.mapping.open(device, this.name, passphrase);
    } catch (err) {
      await device.free();
      throw err;
    }
    this.opened = device;
    this.pending = passphrase;
    // A wipe that fails leaves the disk open and uninitialized: close() and the next boot formats again.
    if (this.layout.wipe) await this.mapping.wipe(device, path);
    return { uuid: await device.uuid(), path };
  }

  /**
   * Opens an initialized disk with the key from the rejoin ticket. A key no keyslot takes is reported as
   * WrongDiskKeyError before anything is written.
   */
  async openWithKey(diskKey: Buffer): Promise<string> {
    const device = await this.checkedCopyOrRefuse();
    try {
      const state = parseToken(await device.tokenJson(DISK_TOKEN_SLOT));
      if (state !== 'initialized')
        throw new Error(
          `${this.disk}: the token says ${state}; only an initialized disk opens with a disk key`,
        );
      try {
        await device.activateByPassphrase(null, 0, diskKey);
      } catch (err) {
        if (err instanceof CryptError && err.code === 'EPERM') throw new WrongDiskKeyError(this.disk);
        throw err;
      }
      const path = await this.mapping.open(device, this.name, diskKey);
      this.opened = device;
      return path;
    } catch (err) {
      await device.free();
      throw err;
    }
  }

  /** After a successful init or join: keyslot 0 takes the cluster's disk key and the token says initialized. */
  async commit(diskKey: Buffer): Promise<void> {
    const device = this.opened;
    if (device === null || this.pending === null)
      throw new Error(`${this.disk}: commit needs a freshly formatted, open disk`);
    await device.changeKeyslot(0, 0, this.pending, diskKey);
    await device.setTokenJson(DISK_TOKEN_SLOT, tokenJson('initialized'));
    await this.writeBack(device);
    this.pending.fill(0);
    this.pending = null;
  }

  /** A failed init or join after the node lock: the next boot formats again (the mark is in the header). */
  async markForReset(): Promise<void> {
    const device = this.opened ?? (await this.checkedCopyOrRefuse());
    try {
      await device.setTokenJson(DISK_TOKEN_SLOT, tokenJson('uninitialized'));
      await this.writeBack(device);
    } finally {
      if (device !== this.opened) await device.free();
    }
  }

  /** What the token on the disk says now (read through a checked copy). */
  async state(): Promise<DiskState> {
    const device = await this.checkedCopyOrRefuse();
    try {
      return parseToken(await device.tokenJson(DISK_TOKEN_SLOT));
    } finally {
      await device.free();
    }
  }

  async close(): Promise<void> {
    const device = this.opened;
    this.opened = null;
    this.pending?.fill(0);
    this.pending = null;
    if (device === null) return;
    try {
      await this.mapping.close(device, this.name);
    } finally {
      await device.free();
    }
  }

  private async writeBack(device: CryptDevice): Promise<void> {
    // The copy changed: write it onto the disk, then check the disk's header is that copy byte for byte.
    await device.load();
    const raw = await CryptDevice.init(this.disk);
    try {
      await raw.headerRestore(this.copyPath);
      await raw.load();
      const [mine, theirs] = await Promise.all([device.dumpJson(), raw.dumpJson()]);
      if (mine !== theirs)
        throw new Error(`${this.disk}: the header written back differs from the checked copy`);
    } finally {
      await raw.free();
    }
  }

  private async checkedCopyOrRefuse(): Promise<CryptDevice> {
    const device = await this.checkedCopy();
    if (device === null) throw new HeaderRefusedError(this.disk, ['header: no LUKS2 header']);
    return device;
  }

  /**
   * A context on a fresh detached copy of the disk's header that passed the allowlist, with the disk as its data
   * device; null when the disk holds no LUKS header at all (blank).
   */
  private async checkedCopy(): Promise<CryptDevice | null> {
    const magic = await readBytes(this.disk, 0, LUKS_MAGIC.length);
    if (!magic.equals(LUKS_MAGIC)) return null;
    const raw = await CryptDevice.init(this.disk);
    try {
      await rm(this.copyPath, { force: true });
      try {
        await raw.load();
      } catch (err) {
        // libcryptsetup refused it: say what differs when the JSON area is readable, else its own reason.
        const json = await rawHeaderJson(this.disk).catch(() => null);
        const differences = json === null ? [] : headerDifferences(json, this.layout);
        if (differences.length > 0) throw new HeaderRefusedError(this.disk, differences);
        throw err;
      }
      await raw.headerBackup(this.copyPath);
    } finally {
      await raw.free();
    }
    const device = await CryptDevice.init(this.copyPath, this.disk);
    try {
      await device.load();
      await device.setPbkdf(this.layout.format.pbkdf);
      checkHeader(this.disk, await device.dumpJson(), this.layout);
      const uuid = await device.uuid();
      if (!DISK_UUID.test(uuid))
        throw new HeaderRefusedError(this.disk, [
          `uuid: expected a lowercase UUID, got ${JSON.stringify(uuid)}`,
        ]);
      return device;
    } catch (err) {
      await device.free();
      throw err;
    }
  }
}

async function readBytes(path: string, offset: number, length: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** The primary header's JSON area as stored (for naming differences in a header libcryptsetup would not load). */
async function rawHeaderJson(path: string): Promise<string> {
  const binary = await readBytes(path, 0, 4096);
  const hdrSize = Number(binary.readBigUInt64BE(8));
  if (hdrSize <= 4096 || hdrSize > 4 * 1024 * 1024) throw new Error('implausible LUKS2 header size');
  const area = await readBytes(path, 4096, hdrSize - 4096);
  const end = area.indexOf(0);
  return area.subarray(0, end < 0 ? area.length : end).toString('utf8');
}
