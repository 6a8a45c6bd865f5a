// Where commands get the master secret: from the mode sextant-conf.yaml's `kms` names. A KMS-wrapped secret is
// unwrapped per command and kept in memory only; a new one is made here, wrapped, checked to unwrap, and only
// then written, so a refused KMS leaves nothing in the workspace.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MASTER_SECRET_BYTES, type MasterSecret, SALT_BYTES } from '../../common/keys.js';
import { secretsEqual } from '../../common/secrets.js';
import { MASTER_SECRET_FILE, WorkspaceError, workspacePaths } from '../workspace/paths.js';
import { loadOrCreatePlainMasterSecret, readPlainMasterSecret } from './file.js';
import { type KeyWrapper, KmsError } from './kms.js';
import { TransitWrapper } from './transit.js';
import { describeKey, type KmsSpec, keyIdentity } from './uri.js';
import {
  createWrapped,
  readWrapped,
  replaceWrapped,
  WRAPPED_MASTER_SECRET_FILE,
  type WrappedRecord,
} from './wrapped-file.js';

const SECRET_BYTES = MASTER_SECRET_BYTES + SALT_BYTES;

export interface LoadedMasterSecret {
  secret: MasterSecret;
  created: boolean;
  /** Which KMS and key (and key version) gave it, for the operator: "transit key "x" … version 2". */
  source: string;
}

/** The KMS client of a spec; PKCS#11 loads its module (through koffi) only when asked for. */
export async function openKeyWrapper(spec: KmsSpec, env: NodeJS.ProcessEnv): Promise<KeyWrapper> {
  if (spec.mode === 'transit') return new TransitWrapper(spec, env);
  if (spec.mode === 'pkcs11') {
    const { Pkcs11Wrapper } = await import('./pkcs11.js');
    return Pkcs11Wrapper.open(spec, env);
  }
  throw new Error('the file mode has no key wrapper');
}

function split(bytes: Buffer): MasterSecret {
  return {
    key: Buffer.from(bytes.subarray(0, MASTER_SECRET_BYTES)),
    salt: Buffer.from(bytes.subarray(MASTER_SECRET_BYTES)),
  };
}

function wrappedPath(dir: string): string {
  return join(workspacePaths(dir).dir, WRAPPED_MASTER_SECRET_FILE);
}

function source(spec: KmsSpec, keyVersion: string): string {
  return `${describeKey(spec)}, key version ${keyVersion}`;
}

/** Refuses the mixes a changed `kms` leaves: a plain file under a KMS mode, a blob of another key. */
async function checkWorkspace(dir: string, spec: KmsSpec): Promise<WrappedRecord | undefined> {
  const record = await readWrapped(wrappedPath(dir));
  if (spec.mode === 'file') {
    if (record) {
      throw new WorkspaceError(
        WRAPPED_MASTER_SECRET_FILE,
        `the master secret is wrapped by ${record.key}, but kms in sextant-conf.yaml is "file": set kms back to the URI of that key`,
      );
    }
    return undefined;
  }
  if (record && record.key !== keyIdentity(spec)) {
    throw new KmsError(
      spec,
      `the workspace's master secret was wrapped by another key (${record.key})`,
      'set kms in sextant-conf.yaml back to the URI of that key',
    );
  }
  if ((await readPlainMasterSecret(dir)) !== undefined) {
    throw new WorkspaceError(
      MASTER_SECRET_FILE,
      `holds the master secret unwrapped while kms names ${describeKey(spec)}: run "sextant kms rotate" to wrap it under that key (the plain file is then removed)`,
    );
  }
  return record;
}

async function unwrapChecked(wrapper: KeyWrapper, record: WrappedRecord): Promise<Buffer> {
  const bytes = await wrapper.unwrap(record);
  if (bytes.length !== SECRET_BYTES) {
    throw new KmsError(
      wrapper.spec,
      `the unwrapped master secret has ${bytes.length} bytes, expected ${SECRET_BYTES}`,
      'restore sextant-mastersecret.wrapped.json from a backup',
    );
  }
  return bytes;
}

/** Wraps and proves the blob unwraps to the same bytes: a token that may encrypt but not decrypt stops here. */
async function wrapChecked(wrapper: KeyWrapper, bytes: Buffer): Promise<WrappedRecord> {
  const blob = await wrapper.wrap(bytes);
  const record = { key: keyIdentity(wrapper.spec), ...blob };
  const back = await unwrapChecked(wrapper, record);
  if (!secretsEqual(back, bytes)) {
    throw new KmsError(
      wrapper.spec,
      'unwrapping the new blob gave other bytes',
      'check the KMS; nothing was written',
    );
  }
  return record;
}

async function withWrapper<T>(
  spec: KmsSpec,
  env: NodeJS.ProcessEnv,
  fn: (w: KeyWrapper) => Promise<T>,
): Promise<T> {
  const wrapper = await openKeyWrapper(spec, env);
  try {
    return await fn(wrapper);
  } finally {
    await wrapper.close();
  }
}

/**
 * The master secret a command will use, asked of the KMS now: an existing one unwrapped, a new one made and wrapped
 * (and proved to unwrap) but not yet written. `keep()` writes a new one to the workspace; init calls it only once
 * the node's attestation checked out, so a KMS that says no costs the cluster nothing and a refused node leaves
 * no secret behind.
 */
export interface PreparedMasterSecret {
  created: boolean;
  source: string;
  /** Writes a new secret (no-op for an existing one); another CLI's secret if it wrote first. */
  keep(): Promise<LoadedMasterSecret>;
}

export async function prepareMasterSecret(
  dir: string,
  spec: KmsSpec,
  env: NodeJS.ProcessEnv,
): Promise<PreparedMasterSecret> {
  const existing = await checkWorkspace(dir, spec);
  if (spec.mode === 'file') {
    const plain = await readPlainMasterSecret(dir);
    const fileSource = `${MASTER_SECRET_FILE} (0600, no KMS)`;
    return {
      created: plain === undefined,
      source: fileSource,
      keep: async () =>
        plain
          ? { secret: plain, created: false, source: fileSource }
          : { ...(await loadOrCreatePlainMasterSecret(dir)), source: fileSource },
    };
  }
  return withWrapper(spec, env, async (wrapper) => {
    if (existing) {
      const loaded = {
        secret: split(await unwrapChecked(wrapper, existing)),
        created: false,
        source: source(spec, existing.keyVersion),
      };
      return { created: false, source: loaded.source, keep: async () => loaded };
    }
    const bytes = randomBytes(SECRET_BYTES);
    const record = await wrapChecked(wrapper, bytes);
    const loaded = { secret: split(bytes), created: true, source: source(spec, record.keyVersion) };
    return {
      created: true,
      source: loaded.source,
      keep: async () => {
        if (await createWrapped(wrappedPath(dir), record)) return loaded;
        // Another CLI in this workspace wrapped its secret first: use that one.
        const winner = await readWrapped(wrappedPath(dir));
        if (!winner) throw new WorkspaceError(WRAPPED_MASTER_SECRET_FILE, 'vanished while being created');
        return withWrapper(spec, env, async (again) => ({
          secret: split(await unwrapChecked(again, winner)),
          created: false,
          source: source(spec, winner.keyVersion),
        }));
      },
    };
  });
}

/** The workspace's master secret, or a new one written at once: plain in the file mode, wrapped otherwise. */
export async function loadOrCreateMasterSecret(
  dir: string,
  spec: KmsSpec,
  env: NodeJS.ProcessEnv,
): Promise<LoadedMasterSecret> {
  return (await prepareMasterSecret(dir, spec, env)).keep();
}

export interface RotateResult {
  changed: boolean;
  from: string;
  to: string;
}

/**
 * Rewraps the master secret under the key's newest version (or wraps a plain file under the KMS); the secret
 * itself never changes. Idempotent: a blob already under the newest version is left as it is.
 */
export async function rotateMasterSecret(
  dir: string,
  spec: KmsSpec,
  env: NodeJS.ProcessEnv,
): Promise<RotateResult> {
  if (spec.mode === 'file') {
    throw new WorkspaceError(
      MASTER_SECRET_FILE,
      'kms in sextant-conf.yaml is "file": there is no KMS key to rotate (set kms to a transit or pkcs11 URI to wrap the secret)',
    );
  }
  const path = wrappedPath(dir);
  const current = await readWrapped(path);
  if (current && current.key !== keyIdentity(spec)) await checkWorkspace(dir, spec);
  const plain = await readPlainMasterSecret(dir);
  return withWrapper(spec, env, async (wrapper) => {
    if (plain && current) {
      throw new WorkspaceError(
        MASTER_SECRET_FILE,
        `a plain master secret beside ${WRAPPED_MASTER_SECRET_FILE}: keep the one the cluster was initialized with and remove the other`,
      );
    }
    if (plain) {
      const bytes = Buffer.concat([plain.key, plain.salt]);
      const record = await wrapChecked(wrapper, bytes);
      if (!(await createWrapped(path, record))) {
        throw new WorkspaceError(
          WRAPPED_MASTER_SECRET_FILE,
          'appeared while being created; run the command again',
        );
      }
      await rm(workspacePaths(dir).masterSecret);
      return { changed: true, from: `${MASTER_SECRET_FILE} (plain)`, to: source(spec, record.keyVersion) };
    }
    if (!current) {
      throw new KmsError(
        spec,
        'the workspace holds no master secret to rotate',
        'run "sextant init" first, which creates it',
      );
    }
    const bytes = await unwrapChecked(wrapper, current);
    const from = source(spec, current.keyVersion);
    const blob = await wrapper.wrap(bytes);
    if (blob.keyVersion === current.keyVersion) return { changed: false, from, to: from };
    const record = { key: keyIdentity(spec), ...blob };
    if (!secretsEqual(await unwrapChecked(wrapper, record), bytes)) {
      throw new KmsError(
        spec,
        'unwrapping the new blob gave other bytes',
        'check the KMS; nothing was written',
      );
    }
    await replaceWrapped(path, record);
    return { changed: true, from, to: source(spec, record.keyVersion) };
  });
}
