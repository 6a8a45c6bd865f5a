// The master secret of the mini cluster lives in the operator's KMS (a real OpenBao, transit over TLS): no file of
// the workspace, nor a node's console, holds it unwrapped; a copy of the workspace without the KMS token, or with a
// revoked one, cannot use it; a rotation of the KMS key rewraps it in place and the cluster is unaffected.
import assert from 'node:assert/strict';
import { cp, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadOrCreateMasterSecret } from '../../../cli/kms/master-secret.js';
import { parseKmsUri } from '../../../cli/kms/uri.js';
import { WRAPPED_MASTER_SECRET_FILE } from '../../../cli/kms/wrapped-file.js';
import { loadState } from '../../../cli/workspace/state.js';
import { deriveOwnerId } from '../../../common/keys.js';
import type { Scenario } from './scenario.js';

/** Every file under `dir` but the VMs' disks and firmware (what a guest keeps on its disk is the state disk's job). */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const path = join(e.parentPath, e.name);
    if (!e.isFile() || /\.(qcow2|raw|img|fd)$/.test(e.name)) continue;
    if ((await stat(path)).size > 256 * 1024 * 1024) continue;
    out.push(path);
  }
  return out;
}

export const kmsMasterSecret: Scenario = {
  name: 'the master secret lives in the KMS: never unwrapped in the workspace, useless without the KMS, rotated in place',
  async run(c) {
    const spec = parseKmsUri(c.config.kms);
    assert.equal(spec.mode, 'transit', 'mini up --kms wrote the transit key into sextant-conf.yaml');
    const names = await readdir(c.ws);
    assert.ok(names.includes(WRAPPED_MASTER_SECRET_FILE), 'the wrapped master secret is kept');
    assert.ok(!names.includes('sextant-mastersecret.json'), 'no plain master secret in the workspace');

    // the cluster's owner ID derives from the secret the KMS unwraps: the cluster runs on it
    const { secret } = await loadOrCreateMasterSecret(c.ws, spec, c.kms.env);
    const state = await loadState(c.ws);
    assert.ok(state?.ownerId.equals(deriveOwnerId(secret)), 'owner ID from the unwrapped secret');
    const forms = [
      secret.key,
      Buffer.from(secret.key.toString('hex')),
      Buffer.from(secret.key.toString('base64')),
    ];
    for (const file of await filesUnder(c.ws)) {
      const bytes = await readFile(file);
      for (const form of forms) assert.equal(bytes.indexOf(form), -1, `${file} holds the master secret`);
    }

    // a copy of the operator's files elsewhere: without the token, or with a revoked one, it is useless
    const copy = join(c.work, 'stolen-workspace');
    await cp(c.ws, copy, { recursive: true, filter: (src) => !src.startsWith(join(c.ws, 'qemu')) });
    const noToken = await c.sextant(['kms', 'rotate'], copy, { BAO_TOKEN: '', VAULT_TOKEN: '' });
    assert.equal(noToken.code, 1, noToken.stderr);
    assert.match(noToken.stderr, /no KMS token/);
    const revokedToken = await c.kms.bao.keyToken(c.kms.key);
    await c.kms.bao.revoke(revokedToken);
    const revoked = await c.sextant(['kms', 'rotate'], copy, { BAO_TOKEN: revokedToken });
    assert.equal(revoked.code, 1, revoked.stderr);
    assert.match(revoked.stderr, new RegExp(`^sextant kms rotate: transit key "${c.kms.key}"`, 'm'));
    assert.ok(!revoked.stderr.includes(revokedToken), 'the token is never printed');

    // the operator rotates the KMS key: the secret is rewrapped under version 2 and itself unchanged
    const before = await readFile(join(c.ws, WRAPPED_MASTER_SECRET_FILE), 'utf8');
    await c.kms.bao.rotateKey(c.kms.key);
    const rotated = await c.sextant(['kms', 'rotate'], c.ws, c.kms.env);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.match(rotated.stdout, /^rewrapped the master secret: .* -> .*version 2/m);
    assert.notEqual(await readFile(join(c.ws, WRAPPED_MASTER_SECRET_FILE), 'utf8'), before);
    const again = await c.sextant(['kms', 'rotate'], c.ws, c.kms.env);
    assert.match(again.stdout, /^unchanged:/m);
    const after = await loadOrCreateMasterSecret(c.ws, spec, c.kms.env);
    assert.ok(after.secret.key.equals(secret.key) && after.secret.salt.equals(secret.salt), 'same secret');
    const verify = await c.sextant(['verify'], c.ws);
    assert.equal(verify.code, 0, verify.stderr);
  },
};
