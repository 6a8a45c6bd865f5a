// A PKCS#11 token (an HSM; SoftHSM in the tests) wraps the master secret with an AES key that never leaves it:
// AES-GCM inside the token, the IV and the key's identity bound in. Through koffi like the project's other native
// code; the structs are laid out by hand for LP64 (CK_ULONG = 8 bytes), which is every platform the CLI runs on.
import { randomBytes } from 'node:crypto';
import koffi, { type LibraryHandle } from 'koffi';
import { CredentialError, pkcs11Pin } from './credentials.js';
import { type KeyWrapper, KmsError, type WrappedBlob } from './kms.js';
import type { KmsSpec } from './uri.js';

type Pkcs11Spec = Extract<KmsSpec, { mode: 'pkcs11' }>;

const CKR_OK = 0;
const CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191;
const CKR_USER_ALREADY_LOGGED_IN = 0x100;
const CKF_SERIAL_SESSION = 0x4;
const CKU_USER = 1;
const CKA_CLASS = 0x0;
const CKA_LABEL = 0x3;
const CKA_KEY_TYPE = 0x100;
const CKA_ID = 0x102;
const CKO_SECRET_KEY = 4;
const CKK_AES = 0x1f;
const CKM_AES_GCM = 0x1087;
const IV_BYTES = 12;
const TAG_BITS = 128;
const ULONG = 8;

/** The return values an operator can act on, by name; anything else is shown as hex. */
const RV_NAMES: Record<number, string> = {
  5: 'CKR_GENERAL_ERROR',
  48: 'CKR_DEVICE_ERROR',
  64: 'CKR_ENCRYPTED_DATA_INVALID',
  65: 'CKR_ENCRYPTED_DATA_LEN_RANGE',
  99: 'CKR_KEY_TYPE_INCONSISTENT',
  104: 'CKR_KEY_FUNCTION_NOT_PERMITTED',
  112: 'CKR_MECHANISM_INVALID',
  160: 'CKR_PIN_INCORRECT',
  164: 'CKR_PIN_LOCKED',
  224: 'CKR_TOKEN_NOT_PRESENT',
  257: 'CKR_USER_NOT_LOGGED_IN',
};
const rvName = (rv: number) => RV_NAMES[rv] ?? `CKR 0x${rv.toString(16)}`;

interface Module {
  lib: LibraryHandle;
  C_Initialize(args: null): number;
  C_Finalize(args: null): number;
  C_GetSlotList(present: number, list: Buffer | null, count: Buffer): number;
  C_GetTokenInfo(slot: number, info: Buffer): number;
  C_OpenSession(slot: number, flags: number, app: null, notify: null, session: Buffer): number;
  C_CloseSession(session: number): number;
  C_Login(session: number, user: number, pin: Buffer, len: number): number;
  C_Logout(session: number): number;
  C_FindObjectsInit(session: number, template: Buffer, count: number): number;
  C_FindObjects(session: number, handles: Buffer, max: number, count: Buffer): number;
  C_FindObjectsFinal(session: number): number;
  C_GetAttributeValue(session: number, object: number, template: Buffer, count: number): number;
  C_EncryptInit(session: number, mechanism: Buffer, key: number): number;
  C_Encrypt(session: number, data: Buffer, len: number, out: Buffer, outLen: Buffer): number;
  C_DecryptInit(session: number, mechanism: Buffer, key: number): number;
  C_Decrypt(session: number, data: Buffer, len: number, out: Buffer, outLen: Buffer): number;
}

function loadModule(path: string): Module {
  const lib = koffi.load(path);
  const fn = (decl: string) => lib.func(decl);
  return {
    lib,
    C_Initialize: fn('unsigned long C_Initialize(void *args)'),
    C_Finalize: fn('unsigned long C_Finalize(void *args)'),
    C_GetSlotList: fn('unsigned long C_GetSlotList(uint8_t present, void *list, void *count)'),
    C_GetTokenInfo: fn('unsigned long C_GetTokenInfo(unsigned long slot, void *info)'),
    C_OpenSession: fn(
      'unsigned long C_OpenSession(unsigned long slot, unsigned long flags, void *app, void *notify, void *session)',
    ),
    C_CloseSession: fn('unsigned long C_CloseSession(unsigned long session)'),
    C_Login: fn(
      'unsigned long C_Login(unsigned long session, unsigned long user, void *pin, unsigned long len)',
    ),
    C_Logout: fn('unsigned long C_Logout(unsigned long session)'),
    C_FindObjectsInit: fn(
      'unsigned long C_FindObjectsInit(unsigned long session, void *tmpl, unsigned long count)',
    ),
    C_FindObjects: fn(
      'unsigned long C_FindObjects(unsigned long session, void *handles, unsigned long max, void *count)',
    ),
    C_FindObjectsFinal: fn('unsigned long C_FindObjectsFinal(unsigned long session)'),
    C_GetAttributeValue: fn(
      'unsigned long C_GetAttributeValue(unsigned long session, unsigned long object, void *tmpl, unsigned long count)',
    ),
    C_EncryptInit: fn('unsigned long C_EncryptInit(unsigned long session, void *mech, unsigned long key)'),
    C_Encrypt: fn(
      'unsigned long C_Encrypt(unsigned long session, void *data, unsigned long len, void *out, void *outLen)',
    ),
    C_DecryptInit: fn('unsigned long C_DecryptInit(unsigned long session, void *mech, unsigned long key)'),
    C_Decrypt: fn(
      'unsigned long C_Decrypt(unsigned long session, void *data, unsigned long len, void *out, void *outLen)',
    ),
  } as Module;
}

const ulong = (n: number) => {
  const b = Buffer.alloc(ULONG);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};
const readUlong = (b: Buffer, offset = 0) => Number(b.readBigUInt64LE(offset));

/** CK_ATTRIBUTE[]: {type, pValue, ulValueLen}; the value buffers must outlive the call (the caller keeps them). */
function attributes(list: [type: number, value: Buffer | null][]): Buffer {
  const out = Buffer.alloc(list.length * 3 * ULONG);
  list.forEach(([type, value], i) => {
    out.writeBigUInt64LE(BigInt(type), i * 24);
    out.writeBigUInt64LE(value && value.length > 0 ? koffi.address(value) : 0n, i * 24 + 8);
    out.writeBigUInt64LE(BigInt(value?.length ?? 0), i * 24 + 16);
  });
  return out;
}

/** CK_MECHANISM for CKM_AES_GCM with its CK_GCM_PARAMS {pIv, ulIvLen, ulIvBits, pAAD, ulAADLen, ulTagBits}. */
function gcmMechanism(iv: Buffer, aad: Buffer): { mechanism: Buffer; keep: Buffer[] } {
  const params = Buffer.alloc(6 * ULONG);
  params.writeBigUInt64LE(koffi.address(iv), 0);
  params.writeBigUInt64LE(BigInt(iv.length), 8);
  params.writeBigUInt64LE(BigInt(iv.length * 8), 16);
  params.writeBigUInt64LE(koffi.address(aad), 24);
  params.writeBigUInt64LE(BigInt(aad.length), 32);
  params.writeBigUInt64LE(BigInt(TAG_BITS), 40);
  const mechanism = Buffer.alloc(3 * ULONG);
  mechanism.writeBigUInt64LE(BigInt(CKM_AES_GCM), 0);
  mechanism.writeBigUInt64LE(koffi.address(params), 8);
  mechanism.writeBigUInt64LE(BigInt(params.length), 16);
  return { mechanism, keep: [iv, aad, params] };
}

/** Key versions are CKA_IDs read as big-endian numbers: "0a" comes after "09", "0100" after "ff". */
function newer(a: string, b: string): boolean {
  const x = a.replace(/^(00)+/, '');
  const y = b.replace(/^(00)+/, '');
  return x.length !== y.length ? x.length > y.length : x > y;
}

export class Pkcs11Wrapper implements KeyWrapper {
  readonly spec: Pkcs11Spec;
  readonly #m: Module;
  readonly #session: number;
  /** CKA_ID (hex) → object handle of each AES key labelled spec.object. */
  readonly #keys: Map<string, number>;

  private constructor(spec: Pkcs11Spec, m: Module, session: number, keys: Map<string, number>) {
    this.spec = spec;
    this.#m = m;
    this.#session = session;
    this.#keys = keys;
  }

  /** Loads the module, finds the token by label, logs in with the operator's PIN and finds the key's versions. */
  static async open(spec: Pkcs11Spec, env: NodeJS.ProcessEnv): Promise<Pkcs11Wrapper> {
    const fail = (problem: string, todo: string): never => {
      throw new KmsError(spec, problem, todo);
    };
    let pin: string;
    try {
      pin = await pkcs11Pin(env, spec.pinSource);
    } catch (err) {
      if (err instanceof CredentialError) return fail(err.message, "give the CLI the token's user PIN");
      throw err;
    }
    let m: Module;
    try {
      m = loadModule(spec.modulePath);
    } catch (err) {
      return fail(
        `cannot load the module (${(err as Error).message.split('\n')[0]?.slice(0, 120)})`,
        'install it (Debian softhsm2 for SoftHSM) or fix module-path in the kms URI',
      );
    }
    let rv = m.C_Initialize(null);
    if (rv !== CKR_OK && rv !== CKR_CRYPTOKI_ALREADY_INITIALIZED)
      fail(`C_Initialize: ${rvName(rv)}`, "check the module's configuration (SOFTHSM2_CONF for SoftHSM)");
    let session: number | undefined;
    try {
      const slot = Pkcs11Wrapper.#findSlot(m, spec, fail);
      const handle = Buffer.alloc(ULONG);
      rv = m.C_OpenSession(slot, CKF_SERIAL_SESSION, null, null, handle);
      if (rv !== CKR_OK) fail(`C_OpenSession: ${rvName(rv)}`, 'check the token');
      session = readUlong(handle);
      const pinBytes = Buffer.from(pin, 'utf8');
      rv = m.C_Login(session, CKU_USER, pinBytes, pinBytes.length);
      pinBytes.fill(0);
      if (rv === 0xa0 || rv === 0xa4)
        fail(
          `login refused (${rvName(rv)})`,
          "give the token's current user PIN (SEXTANT_PKCS11_PIN or a PIN file)",
        );
      if (rv !== CKR_OK && rv !== CKR_USER_ALREADY_LOGGED_IN)
        fail(`C_Login: ${rvName(rv)}`, 'check the token and the PIN');
      const keys = Pkcs11Wrapper.#findKeys(m, session, spec, fail);
      if (keys.size === 0) {
        fail(
          'no AES key with this label and a CKA_ID on the token',
          `create one (pkcs11-tool --keygen --key-type AES:32 --label ${spec.object} --id 01) or fix object= in the kms URI`,
        );
      }
      return new Pkcs11Wrapper(spec, m, session, keys);
    } catch (err) {
      if (session !== undefined) m.C_CloseSession(session);
      m.C_Finalize(null);
      m.lib.unload();
      throw err;
    }
  }

  static #findSlot(m: Module, spec: Pkcs11Spec, fail: (p: string, t: string) => never): number {
    const count = Buffer.alloc(ULONG);
    let rv = m.C_GetSlotList(1, null, count);
    if (rv !== CKR_OK) fail(`C_GetSlotList: ${rvName(rv)}`, 'check the module');
    const n = readUlong(count);
    const list = Buffer.alloc(Math.max(n, 1) * ULONG);
    rv = m.C_GetSlotList(1, list, count);
    if (rv !== CKR_OK) fail(`C_GetSlotList: ${rvName(rv)}`, 'check the module');
    for (let i = 0; i < readUlong(count); i++) {
      const slot = readUlong(list, i * ULONG);
      const info = Buffer.alloc(512);
      if (m.C_GetTokenInfo(slot, info) !== CKR_OK) continue;
      if (info.subarray(0, 32).toString('utf8').trimEnd() === spec.token) return slot;
    }
    return fail(
      'no token with this label',
      'initialize it (softhsm2-util --init-token) or fix token= in the kms URI',
    );
  }

  static #findKeys(
    m: Module,
    session: number,
    spec: Pkcs11Spec,
    fail: (p: string, t: string) => never,
  ): Map<string, number> {
    const label = Buffer.from(spec.object, 'utf8');
    const cls = ulong(CKO_SECRET_KEY);
    const type = ulong(CKK_AES);
    const template = attributes([
      [CKA_CLASS, cls],
      [CKA_KEY_TYPE, type],
      [CKA_LABEL, label],
    ]);
    let rv = m.C_FindObjectsInit(session, template, 3);
    if (rv !== CKR_OK) fail(`C_FindObjectsInit: ${rvName(rv)}`, 'check the token');
    const handles = Buffer.alloc(64 * ULONG);
    const found = Buffer.alloc(ULONG);
    rv = m.C_FindObjects(session, handles, 64, found);
    m.C_FindObjectsFinal(session);
    if (rv !== CKR_OK) fail(`C_FindObjects: ${rvName(rv)}`, 'check the token');
    const keys = new Map<string, number>();
    for (let i = 0; i < readUlong(found); i++) {
      const object = readUlong(handles, i * ULONG);
      const probe = attributes([[CKA_ID, null]]);
      if (m.C_GetAttributeValue(session, object, probe, 1) !== CKR_OK) continue;
      const length = readUlong(probe, 16);
      if (length === 0 || length > 32) continue;
      const id = Buffer.alloc(length);
      const read = attributes([[CKA_ID, id]]);
      if (m.C_GetAttributeValue(session, object, read, 1) !== CKR_OK) continue;
      keys.set(id.toString('hex'), object);
    }
    return keys;
  }

  #fail(problem: string, todo: string): never {
    throw new KmsError(this.spec, problem, todo);
  }

  /** Binds the ciphertext to this key and version: a blob moved to another key does not authenticate. */
  #aad(version: string): Buffer {
    return Buffer.from(
      `sextant master secret v1\0${this.spec.token}\0${this.spec.object}\0${version}`,
      'utf8',
    );
  }

  async wrap(plaintext: Buffer): Promise<WrappedBlob> {
    let version = '';
    for (const id of this.#keys.keys()) if (version === '' || newer(id, version)) version = id;
    const iv = randomBytes(IV_BYTES);
    const { mechanism, keep } = gcmMechanism(iv, this.#aad(version));
    let rv = this.#m.C_EncryptInit(this.#session, mechanism, this.#keys.get(version) as number);
    if (rv !== CKR_OK)
      this.#fail(`C_EncryptInit: ${rvName(rv)}`, 'the key must allow CKA_ENCRYPT with CKM_AES_GCM');
    const out = Buffer.alloc(plaintext.length + TAG_BITS / 8);
    const outLen = ulong(out.length);
    rv = this.#m.C_Encrypt(this.#session, plaintext, plaintext.length, out, outLen);
    keep.length = 0;
    if (rv !== CKR_OK) this.#fail(`C_Encrypt: ${rvName(rv)}`, 'check the token');
    const ciphertext = Buffer.concat([iv, out.subarray(0, readUlong(outLen))]).toString('base64');
    return { keyVersion: version, ciphertext };
  }

  async unwrap(blob: WrappedBlob): Promise<Buffer> {
    const key = this.#keys.get(blob.keyVersion);
    if (key === undefined) {
      this.#fail(
        `no key version (CKA_ID) ${blob.keyVersion} on the token`,
        'the key that wrapped the master secret was removed or this is another token; restore it or its token',
      );
    }
    const bytes = Buffer.from(blob.ciphertext, 'base64');
    if (bytes.length <= IV_BYTES + TAG_BITS / 8 || bytes.toString('base64') !== blob.ciphertext) {
      this.#fail(
        'the wrapped master secret is corrupted (not an IV and AES-GCM ciphertext)',
        'restore sextant-mastersecret.wrapped.json from a backup',
      );
    }
    const { mechanism, keep } = gcmMechanism(bytes.subarray(0, IV_BYTES), this.#aad(blob.keyVersion));
    let rv = this.#m.C_DecryptInit(this.#session, mechanism, key);
    if (rv !== CKR_OK)
      this.#fail(`C_DecryptInit: ${rvName(rv)}`, 'the key must allow CKA_DECRYPT with CKM_AES_GCM');
    const data = Buffer.from(bytes.subarray(IV_BYTES));
    const out = Buffer.alloc(data.length);
    const outLen = ulong(out.length);
    rv = this.#m.C_Decrypt(this.#session, data, data.length, out, outLen);
    keep.length = 0;
    if (rv !== CKR_OK) {
      this.#fail(
        `the wrapped master secret does not decrypt under this key (${rvName(rv)}: wrapped by another key, or corrupted)`,
        'restore sextant-mastersecret.wrapped.json from a backup, or point kms at the key that wrapped it',
      );
    }
    return Buffer.from(out.subarray(0, readUlong(outLen)));
  }

  async close(): Promise<void> {
    this.#m.C_Logout(this.#session);
    this.#m.C_CloseSession(this.#session);
    this.#m.C_Finalize(null);
    this.#m.lib.unload();
  }
}
