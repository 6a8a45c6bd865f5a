// kubeadm's shared control-plane certificates as the ticket carries them: read from a control plane's pki, written
// on the joining one with keys 0600 — exactly the shared set, or nothing at all.
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  CONTROL_PLANE_CERTIFICATES,
  readControlPlaneCertificates,
  writeControlPlaneCertificates,
} from '../../../agent/kubeadm/control-plane-certs.js';
import { tempDir } from '../../harness/temp-dir.js';

const dir = tempDir('sextant-cp-certs-');

let seq = 0;
const fresh = () => join(dir, `pki-${seq++}`);
const files = () => CONTROL_PLANE_CERTIFICATES.map((path) => ({ path, data: Buffer.from(`pem of ${path}`) }));

describe('control-plane certificates', () => {
  it("reads kubeadm's shared set from a control plane, and writes it on another (keys 0600, certificates 0644)", async () => {
    const source = fresh();
    await mkdir(join(source, 'etcd'), { recursive: true });
    for (const f of files()) await writeFile(join(source, f.path), f.data);
    // what is not shared stays home: the API server's own key never travels
    await writeFile(join(source, 'apiserver.key'), 'own key');
    const read = await readControlPlaneCertificates(source);
    assert.deepEqual(read, files());

    const target = fresh();
    await writeControlPlaneCertificates(target, read);
    for (const f of files()) {
      assert.deepEqual(await readFile(join(target, f.path)), f.data);
      assert.equal((await stat(join(target, f.path))).mode & 0o777, f.path.endsWith('.key') ? 0o600 : 0o644);
    }
  });

  it('a control plane missing one of them hands out none, naming it', async () => {
    const source = fresh();
    await mkdir(join(source, 'etcd'), { recursive: true });
    for (const f of files().filter((f) => f.path !== 'etcd/ca.key'))
      await writeFile(join(source, f.path), f.data);
    await assert.rejects(
      readControlPlaneCertificates(source),
      /^Error: control-plane certificate etcd\/ca\.key: ENOENT$/,
    );
  });

  const refusals: { name: string; files: () => { path: string; data: Buffer }[]; error: RegExp }[] = [
    {
      name: 'a path outside the shared set',
      files: () => [...files(), { path: '../../etc/shadow', data: Buffer.from('x') }],
      error: /"..\/..\/etc\/shadow" is not a shared certificate/,
    },
    {
      name: "a kubeadm file that is not shared (the API server's own key)",
      files: () => [...files(), { path: 'apiserver.key', data: Buffer.from('x') }],
      error: /"apiserver.key" is not a shared certificate/,
    },
    {
      name: 'a file given twice',
      files: () => [...files(), { path: 'ca.key', data: Buffer.from('other') }],
      error: /ca\.key given twice/,
    },
    {
      name: 'an empty file',
      files: () => files().map((f) => (f.path === 'sa.pub' ? { ...f, data: Buffer.alloc(0) } : f)),
      error: /sa\.pub is empty/,
    },
    {
      name: 'a missing file (kubeadm would make a CA of its own)',
      files: () => files().filter((f) => f.path !== 'front-proxy-ca.key' && f.path !== 'etcd/ca.crt'),
      error: /missing front-proxy-ca\.key, etcd\/ca\.crt/,
    },
  ];
  for (const r of refusals) {
    it(`refuses ${r.name}, writing nothing`, async () => {
      const target = fresh();
      await assert.rejects(writeControlPlaneCertificates(target, r.files()), r.error);
      await assert.rejects(readdir(target), /ENOENT/);
    });
  }
});
