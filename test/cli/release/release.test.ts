// A release directory is used only when its manifest's signature verifies against the release key beside it and
// the measurements are the ones it names; config generate --release fills the config from it.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { configGenerate } from '../../../cli/commands/config-generate.js';
import { createContext } from '../../../cli/commands/context.js';
import { loadConfig } from '../../../cli/config/file.js';
import { loadRelease, RELEASE_SERVER_PORT, releaseComponents } from '../../../cli/release/release.js';
import { tempDir } from '../../harness/temp-dir.js';
import { MEASUREMENTS, writeRelease } from './fixtures/release.js';

const dirs: string[] = [];
async function releaseDir(mutate?: (dir: string) => Promise<void>): Promise<string> {
  const dir = await writeRelease(mutate);
  dirs.push(dir);
  return dir;
}
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('release directory', () => {
  const cases: { name: string; mutate?: (dir: string) => Promise<void>; error?: RegExp }[] = [
    { name: 'a signed release loads' },
    {
      name: 'an altered manifest is refused',
      mutate: async (d) => {
        const text = await readFile(join(d, 'release.json'), 'utf8');
        await writeFile(join(d, 'release.json'), text.replace('v1.34.4', 'v1.34.5'));
      },
      error: /release\.json: signature does not verify/,
    },
    {
      name: 'another key is refused',
      mutate: async (d) => {
        const other = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' });
        await writeFile(join(d, 'measurements.pub.pem'), other);
      },
      error: /signature does not verify/,
    },
    {
      name: 'measurements the manifest does not name are refused',
      mutate: (d) => writeFile(join(d, 'measurements.json'), `${MEASUREMENTS} `),
      error: /measurements\.json: SHA-256 [0-9a-f]{64} is not the release's/,
    },
    {
      name: 'a directory without a manifest says what it expected',
      mutate: (d) => rm(join(d, 'release.json')),
      error: /release\.json: cannot read \(ENOENT\); is .* a release directory/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const dir = await releaseDir(c.mutate);
      if (c.error) {
        await assert.rejects(loadRelease(dir), c.error);
        return;
      }
      const r = await loadRelease(dir);
      assert.equal(r.manifest.kubernetesVersion, 'v1.34.4');
      assert.equal(r.imageDir, join(dir, 'image'));
    });
  }

  it('components point at the provider server, checked by SHA-256, never unpacked', async () => {
    const r = await loadRelease(await releaseDir());
    assert.deepEqual(releaseComponents(r.manifest, '10.213.20.1')[0], {
      url: `http://10.213.20.1:${RELEASE_SERVER_PORT}/kubeadm`,
      sha256: 'a'.repeat(64),
      installPath: '/usr/local/bin/kubeadm',
      extract: false,
    });
  });

  it('config generate --release pins the measurements and fills image, version, subnet and components', async () => {
    const dir = await releaseDir();
    const ws = tempDir('sextant-ws-');
    let err = '';
    const ctx = createContext({
      workspace: ws,
      stdout: { write: () => true },
      stderr: { write: (s) => (err += s) },
    });
    assert.equal(await configGenerate(ctx, { provider: 'qemu', release: dir, force: false }), 0);
    const config = await loadConfig(ws);
    assert.equal(config.kubernetes.version, 'v1.34.4');
    assert.equal(config.provider.qemu.image, join(dir, 'image'));
    assert.equal(config.provider.qemu.release, dir);
    assert.match(config.provider.qemu.subnet, /^10\.213\.\d+\.0\/24$/);
    const host = config.provider.qemu.subnet.replace(/0\/24$/, '1');
    assert.deepEqual(
      config.kubernetes.components.map((c) => c.url),
      [
        `http://${host}:${RELEASE_SERVER_PORT}/kubeadm`,
        `http://${host}:${RELEASE_SERVER_PORT}/image-etcd.tar`,
      ],
    );
    assert.equal(config.attestation.measurementsFile, 'sextant-measurements.json');
    assert.equal(config.attestation.measurementsPublicKey, 'sextant-measurements-key.pem');
    assert.match(err, /release .*Kubernetes v1\.34\.4, image abcdef0123456789, 2 components/);
  });

  it('config generate --release refuses a tampered release and writes nothing', async () => {
    const dir = await releaseDir((d) => writeFile(join(d, 'release.json.sig'), Buffer.alloc(64)));
    const ws = tempDir('sextant-ws-');
    const ctx = createContext({
      workspace: ws,
      stdout: { write: () => true },
      stderr: { write: () => true },
    });
    await assert.rejects(
      configGenerate(ctx, { provider: 'qemu', release: dir, force: false }),
      /--release: .*signature does not verify/,
    );
    await assert.rejects(loadConfig(ws), /not found/);
  });
});
