// One LUKS2 device (or a detached header on a file) through libcryptsetup. libcryptsetup is not thread safe and koffi
// `.async` runs calls on worker threads, so every call of every device goes through one process-wide queue; the long
// ones (format, keyslot PBKDF, activation, wipe) run off the event loop.
import { CryptError } from './errors.js';
import { fn, type Pointer, takeLogged } from './library.js';

type AsyncFn = { async: (...args: unknown[]) => void };

function callAsync<R>(f: AsyncFn, ...args: unknown[]): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    f.async(...args, (err: unknown, result: R) => (err ? reject(err) : resolve(result)));
  });
}

let queue: Promise<unknown> = Promise.resolve();

/** Runs `job` after every earlier libcryptsetup call of this process has finished. */
function serialized<T>(job: () => Promise<T> | T): Promise<T> {
  const run = queue.then(job, job);
  queue = run.catch(() => undefined);
  return run;
}

function check(operation: string, rc: number): number {
  const logged = takeLogged();
  if (rc < 0) throw new CryptError(operation, -rc, logged);
  return rc;
}

export const CRYPT_ANY_SLOT = -1;
/** crypt_wipe patterns and flags. */
const CRYPT_WIPE_ZERO = 0;
const CRYPT_WIPE_NO_DIRECT_IO = 1 << 0;

export interface FormatOptions {
  cipher: string; // e.g. "aes"
  cipherMode: string; // e.g. "xts-plain64"
  /** Volume key bytes: cipher key + integrity key (64 + 32 for aes-xts-plain64 with hmac(sha256)). */
  volumeKeyBytes: number;
  /** dm-integrity algorithm, e.g. "hmac(sha256)"; null for none. */
  integrity: string | null;
  sectorSize: number;
  /** Keep a known UUID across a reformat; otherwise libcryptsetup draws one. */
  uuid?: string;
  /** PBKDF for the keyslots: minimal-cost PBKDF2 suits machine-generated, high-entropy keys. */
  pbkdf: { type: 'pbkdf2'; hash: string; iterations: number };
  label?: string;
}

export class CryptDevice {
  private cd: Pointer;
  readonly path: string;

  private constructor(cd: Pointer, path: string) {
    this.cd = cd;
    this.path = path;
  }

  /**
   * A context on `headerPath`; with `dataPath`, the header is detached (a file) and `dataPath` holds the data
   * segment. Nothing is read until `load` or `format`.
   */
  static init(headerPath: string, dataPath?: string): Promise<CryptDevice> {
    return serialized(() => {
      const out: [Pointer] = [null];
      const rc =
        dataPath === undefined
          ? fn.crypt_init(out, headerPath)
          : fn.crypt_init_data_device(out, headerPath, dataPath);
      check(`init ${headerPath}`, rc);
      return new CryptDevice(out[0], headerPath);
    });
  }

  private get handle(): Pointer {
    if (this.cd === null) throw new Error(`cryptsetup device ${this.path}: used after free`);
    return this.cd;
  }

  free(): Promise<void> {
    return serialized(() => {
      if (this.cd !== null) fn.crypt_free(this.cd);
      this.cd = null;
    });
  }

  /**
   * The PBKDF for keyslots this context adds or changes; a context that was only loaded would otherwise use
   * libcryptsetup's default (argon2id with a benchmark).
   */
  setPbkdf(pbkdf: FormatOptions['pbkdf']): Promise<void> {
    return serialized(() => {
      this.applyPbkdf(pbkdf);
    });
  }

  private applyPbkdf(opts: FormatOptions['pbkdf']) {
    const pbkdf = {
      type: opts.type,
      hash: opts.hash,
      time_ms: 0,
      iterations: opts.iterations,
      max_memory_kb: 0,
      parallel_threads: 0,
      flags: 1 << 1, // CRYPT_PBKDF_NO_BENCHMARK: the iteration count is fixed, not timed
    };
    check('set PBKDF', fn.crypt_set_pbkdf_type(this.handle, pbkdf));
    return pbkdf;
  }

  format(opts: FormatOptions, volumeKey?: Buffer): Promise<void> {
    return serialized(async () => {
      const pbkdf = this.applyPbkdf(opts.pbkdf);
      const params = {
        pbkdf,
        integrity: opts.integrity,
        integrity_params: null,
        data_alignment: 0,
        data_device: null,
        sector_size: opts.sectorSize,
        label: opts.label ?? null,
        subsystem: null,
      };
      const rc = await callAsync<number>(
        fn.crypt_format as AsyncFn,
        this.handle,
        'LUKS2',
        opts.cipher,
        opts.cipherMode,
        opts.uuid ?? null,
        volumeKey ?? null,
        opts.volumeKeyBytes,
        params,
      );
      check(`format ${this.path}`, rc);
    });
  }

  /** Reads and validates the LUKS2 header (libcryptsetup checks its checksums and JSON). */
  load(): Promise<void> {
    return serialized(() => {
      check(`load LUKS2 header of ${this.path}`, fn.crypt_load(this.handle, 'LUKS2', null));
    });
  }

  uuid(): Promise<string> {
    return serialized(() => {
      const uuid = fn.crypt_get_uuid(this.handle) as string | null;
      if (uuid === null) throw new Error(`${this.path}: no UUID (header not loaded)`);
      return uuid;
    });
  }

  /** Adds `passphrase` to `slot` (or the first free one); returns the slot number. */
  addKeyslotByVolumeKey(slot: number, passphrase: Buffer, volumeKey?: Buffer): Promise<number> {
    return serialized(async () => {
      const rc = await callAsync<number>(
        fn.crypt_keyslot_add_by_volume_key as AsyncFn,
        this.handle,
        slot,
        volumeKey ?? null,
        volumeKey?.length ?? 0,
        passphrase,
        passphrase.length,
      );
      return check(`add keyslot ${slot} to ${this.path}`, rc);
    });
  }

  /** Adds `newPassphrase` to `slot`, unlocking the volume key with `passphrase`; returns the slot number. */
  addKeyslotByPassphrase(slot: number, passphrase: Buffer, newPassphrase: Buffer): Promise<number> {
    return serialized(async () => {
      const rc = await callAsync<number>(
        fn.crypt_keyslot_add_by_passphrase as AsyncFn,
        this.handle,
        slot,
        passphrase,
        passphrase.length,
        newPassphrase,
        newPassphrase.length,
      );
      return check(`add keyslot ${slot} to ${this.path}`, rc);
    });
  }

  /** Replaces the passphrase of `oldSlot` by `newPassphrase` in `newSlot` (may be the same slot). */
  changeKeyslot(
    oldSlot: number,
    newSlot: number,
    passphrase: Buffer,
    newPassphrase: Buffer,
  ): Promise<number> {
    return serialized(async () => {
      const rc = await callAsync<number>(
        fn.crypt_keyslot_change_by_passphrase as AsyncFn,
        this.handle,
        oldSlot,
        newSlot,
        passphrase,
        passphrase.length,
        newPassphrase,
        newPassphrase.length,
      );
      return check(`change keyslot ${oldSlot} of ${this.path}`, rc);
    });
  }

  destroyKeyslot(slot: number): Promise<void> {
    return serialized(() => {
      check(`destroy keyslot ${slot} of ${this.path}`, fn.crypt_keyslot_destroy(this.handle, slot));
    });
  }

  keyslotStatus(slot: number): Promise<number> {
    return serialized(() => fn.crypt_keyslot_status(this.handle, slot) as number);
  }

  /** The JSON of token `token`, or null when the token slot is empty. */
  tokenJson(token: number): Promise<string | null> {
    return serialized(() => {
      const out: [string | null] = [null];
      const rc = fn.crypt_token_json_get(this.handle, token, out) as number;
      if (rc === -2 /* ENOENT */ || rc === -22 /* EINVAL: inactive */) {
        takeLogged();
        return null;
      }
      check(`read token ${token} of ${this.path}`, rc);
      return out[0];
    });
  }

  /** Writes token `token` (null removes it); returns the token number. */
  setTokenJson(token: number, json: string | null): Promise<number> {
    return serialized(() =>
      check(`write token ${token} of ${this.path}`, fn.crypt_token_json_set(this.handle, token, json)),
    );
  }

  /** The whole LUKS2 header JSON (what `cryptsetup luksDump --dump-json-metadata` prints). */
  dumpJson(): Promise<string> {
    return serialized(() => {
      const out: [string | null] = [null];
      check(`dump header of ${this.path}`, fn.crypt_dump_json(this.handle, out, 0));
      if (out[0] === null) throw new Error(`${this.path}: empty header dump`);
      return out[0];
    });
  }

  /** Copies the header (binary header, JSON area and keyslot area) to a new file `file`. */
  headerBackup(file: string): Promise<void> {
    return serialized(async () => {
      const rc = await callAsync<number>(fn.crypt_header_backup as AsyncFn, this.handle, 'LUKS2', file);
      check(`back up header of ${this.path} to ${file}`, rc);
    });
  }

  /** Writes the header in `file` onto this device. */
  headerRestore(file: string): Promise<void> {
    return serialized(async () => {
      const rc = await callAsync<number>(fn.crypt_header_restore as AsyncFn, this.handle, 'LUKS2', file);
      check(`restore header of ${this.path} from ${file}`, rc);
    });
  }

  /**
   * Overwrites `length` bytes at `offset` of `devPath` (default: the data device) with zeros, in blocks of
   * `blockBytes`. On an integrity device `devPath` is the opened mapping, so every sector gets a valid tag.
   */
  wipe(opts: {
    devPath?: string;
    offset: bigint;
    length: bigint;
    blockBytes: number;
    directIo?: boolean;
  }): Promise<void> {
    return serialized(async () => {
      const rc = await callAsync<number>(
        fn.crypt_wipe as AsyncFn,
        this.handle,
        opts.devPath ?? null,
        CRYPT_WIPE_ZERO,
        opts.offset,
        opts.length,
        opts.blockBytes,
        opts.directIo === false ? CRYPT_WIPE_NO_DIRECT_IO : 0,
        null,
        null,
      );
      check(`wipe ${opts.devPath ?? this.path}`, rc);
    });
  }

  /**
   * Opens the mapping `name` with `passphrase` from `slot` (CRYPT_ANY_SLOT: any); with name null, only checks the
   * passphrase (no device-mapper needed). Returns the slot that matched.
   */
  activateByPassphrase(name: string | null, slot: number, passphrase: Buffer, flags = 0): Promise<number> {
    return serialized(async () => {
      const rc = await callAsync<number>(
        fn.crypt_activate_by_passphrase as AsyncFn,
        this.handle,
        name,
        slot,
        passphrase,
        passphrase.length,
        flags,
      );
      return check(name === null ? `check passphrase for ${this.path}` : `open ${this.path} as ${name}`, rc);
    });
  }

  /** The volume key, unlocked by `passphrase`. The caller wipes the returned buffer when done. */
  volumeKey(slot: number, passphrase: Buffer, size: number): Promise<Buffer> {
    return serialized(async () => {
      const key = Buffer.alloc(size);
      const len: [number] = [size];
      const rc = await callAsync<number>(
        fn.crypt_volume_key_get as AsyncFn,
        this.handle,
        slot,
        key,
        len,
        passphrase,
        passphrase.length,
      );
      check(`unlock volume key of ${this.path}`, rc);
      return key.subarray(0, len[0]);
    });
  }

  deactivate(name: string): Promise<void> {
    return serialized(() => {
      check(`close ${name}`, fn.crypt_deactivate(this.handle, name));
    });
  }
}
