// koffi loading of Debian's libcryptsetup.so.12 (cryptsetup 2.6.1): the functions the state disk needs and the two
// flat parameter structs. Every secret crosses as a Buffer (`const void *` + length), never as a JS string.
import koffi, { type LibraryHandle } from 'koffi';

function load(soname: string): LibraryHandle {
  try {
    return koffi.load(soname);
  } catch (err) {
    throw new Error(`cannot load ${soname} (Debian package libcryptsetup12): ${(err as Error).message}`);
  }
}

const lib = load('libcryptsetup.so.12');

export const crypt_pbkdf_type = koffi.struct('crypt_pbkdf_type', {
  type: 'const char *',
  hash: 'const char *',
  time_ms: 'uint32_t',
  iterations: 'uint32_t',
  max_memory_kb: 'uint32_t',
  parallel_threads: 'uint32_t',
  flags: 'uint32_t',
});
export const crypt_params_luks2 = koffi.struct('crypt_params_luks2', {
  pbkdf: 'const crypt_pbkdf_type *',
  integrity: 'const char *',
  integrity_params: 'void *',
  data_alignment: 'size_t',
  data_device: 'const char *',
  sector_size: 'uint32_t',
  label: 'const char *',
  subsystem: 'const char *',
});

// Layouts of libcryptsetup.h 2.6.1 on x86-64: a mismatch would corrupt memory, so refuse to run.
for (const [type, size] of [
  [crypt_pbkdf_type, 36 + 4],
  [crypt_params_luks2, 64],
] as const) {
  if (koffi.sizeof(type) !== size)
    throw new Error(
      `koffi lays out ${type.name} as ${koffi.sizeof(type)} bytes, libcryptsetup expects ${size}`,
    );
}

const LogCallback = koffi.proto('void crypt_log_cb(int level, const char *msg, void *usrptr)');

/** A C pointer as koffi 3 hands it out. */
export type Pointer = bigint | null;

export const fn = {
  crypt_init: lib.func('int crypt_init(_Out_ void **cd, const char *device)'),
  crypt_init_data_device: lib.func(
    'int crypt_init_data_device(_Out_ void **cd, const char *device, const char *data_device)',
  ),
  crypt_free: lib.func('void crypt_free(void *cd)'),
  crypt_set_log_callback: lib.func('void crypt_set_log_callback(void *cd, crypt_log_cb *log, void *usrptr)'),
  crypt_set_pbkdf_type: lib.func('int crypt_set_pbkdf_type(void *cd, const crypt_pbkdf_type *pbkdf)'),
  crypt_format: lib.func(
    'int crypt_format(void *cd, const char *type, const char *cipher, const char *cipher_mode, const char *uuid, ' +
      'const void *volume_key, size_t volume_key_size, const crypt_params_luks2 *params)',
  ),
  crypt_load: lib.func('int crypt_load(void *cd, const char *requested_type, void *params)'),
  crypt_get_uuid: lib.func('const char *crypt_get_uuid(void *cd)'),
  crypt_set_uuid: lib.func('int crypt_set_uuid(void *cd, const char *uuid)'),
  crypt_keyslot_add_by_volume_key: lib.func(
    'int crypt_keyslot_add_by_volume_key(void *cd, int keyslot, const void *volume_key, size_t volume_key_size, ' +
      'const void *passphrase, size_t passphrase_size)',
  ),
  crypt_keyslot_add_by_passphrase: lib.func(
    'int crypt_keyslot_add_by_passphrase(void *cd, int keyslot, const void *passphrase, size_t passphrase_size, ' +
      'const void *new_passphrase, size_t new_passphrase_size)',
  ),
  crypt_keyslot_change_by_passphrase: lib.func(
    'int crypt_keyslot_change_by_passphrase(void *cd, int keyslot_old, int keyslot_new, const void *passphrase, ' +
      'size_t passphrase_size, const void *new_passphrase, size_t new_passphrase_size)',
  ),
  crypt_keyslot_destroy: lib.func('int crypt_keyslot_destroy(void *cd, int keyslot)'),
  crypt_keyslot_status: lib.func('int crypt_keyslot_status(void *cd, int keyslot)'),
  crypt_token_json_get: lib.func('int crypt_token_json_get(void *cd, int token, _Out_ const char **json)'),
  crypt_token_json_set: lib.func('int crypt_token_json_set(void *cd, int token, const char *json)'),
  crypt_dump_json: lib.func('int crypt_dump_json(void *cd, _Out_ const char **json, uint32_t flags)'),
  crypt_header_backup: lib.func(
    'int crypt_header_backup(void *cd, const char *requested_type, const char *backup_file)',
  ),
  crypt_header_restore: lib.func(
    'int crypt_header_restore(void *cd, const char *requested_type, const char *backup_file)',
  ),
  crypt_wipe: lib.func(
    'int crypt_wipe(void *cd, const char *dev_path, int pattern, uint64_t offset, uint64_t length, ' +
      'size_t wipe_block_size, uint32_t flags, void *progress, void *usrptr)',
  ),
  crypt_activate_by_passphrase: lib.func(
    'int crypt_activate_by_passphrase(void *cd, const char *name, int keyslot, const void *passphrase, ' +
      'size_t passphrase_size, uint32_t flags)',
  ),
  crypt_volume_key_get: lib.func(
    'int crypt_volume_key_get(void *cd, int keyslot, _Out_ uint8_t *volume_key, _Inout_ size_t *volume_key_size, ' +
      'const void *passphrase, size_t passphrase_size)',
  ),
  crypt_deactivate: lib.func('int crypt_deactivate(void *cd, const char *name)'),
};

/** The last error lines libcryptsetup logged (its messages name devices and operations, never key material). */
const recent: string[] = [];
const LOG_ERROR = 1;
const logCallback = koffi.register((level: number, msg: string) => {
  if (level !== LOG_ERROR) return;
  recent.push(msg.trim());
  if (recent.length > 8) recent.shift();
}, koffi.pointer(LogCallback));
// The default handler prints to stderr; the process's own logger reports failures with their context instead.
fn.crypt_set_log_callback(null, logCallback, null);

/** Takes the error lines logged since the last call. */
export function takeLogged(): string[] {
  return recent.splice(0, recent.length);
}
