// Test harness: a SoftHSM token in its own directory (SOFTHSM2_CONF), with AES keys made by OpenSC's pkcs11-tool,
// as an HSM administrator would make them: never extractable, usable for encrypt and decrypt.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface SoftHsm {
  /** SOFTHSM2_CONF for every process that opens the token (the CLI included). */
  env: { SOFTHSM2_CONF: string };
  token: string;
  pin: string;
  /** Adds an AES-256 key `label` with CKA_ID `id` (hex): a new key, or a new version of one. */
  addKey(label: string, id: string): Promise<void>;
  /** Changes the user PIN (what an HSM administrator does to take a user's access away). */
  changePin(newPin: string): Promise<void>;
  /** kms URI for key `label`. */
  uri(label: string): string;
  remove(): Promise<void>;
}

export async function createSoftHsm(token = 'sextant'): Promise<SoftHsm> {
  const dir = await mkdtemp(join(tmpdir(), 'sextant-softhsm-'));
  const conf = join(dir, 'softhsm2.conf');
  await mkdir(join(dir, 'tokens'));
  await writeFile(
    conf,
    `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  const env = { SOFTHSM2_CONF: conf };
  const pin = '246810';
  await run(
    'softhsm2-util',
    ['--init-token', '--free', '--label', token, '--so-pin', '13579', '--pin', pin],
    {
      env: { ...process.env, ...env },
    },
  );
  // every administrator action: logged in to this token as its user, with the token's SOFTHSM2_CONF
  const pkcs11Tool = (action: string[]) =>
    run(
      'pkcs11-tool',
      ['--module', SOFTHSM_MODULE, '--token-label', token, '--login', '--pin', pin, ...action],
      { env: { ...process.env, ...env } },
    );
  return {
    env,
    token,
    pin,
    addKey: async (label, id) => {
      await pkcs11Tool(['--keygen', '--key-type', 'AES:32', '--label', label, '--id', id]);
    },
    changePin: async (newPin) => {
      await pkcs11Tool(['--change-pin', '--new-pin', newPin]);
    },
    uri: (label) => `pkcs11:token=${token};object=${label}?module-path=${SOFTHSM_MODULE}`,
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
