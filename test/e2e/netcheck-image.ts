// The e2e's own workload image: test/e2e/netcheck, one static Go binary, as a docker archive (what `docker save`
// writes; `ctr images import` names it by RepoTags) that `sextant mini up --preload-image` puts on every node.
// Deterministic (-trimpath, mtime 0), so the release that carries it stays cached between runs.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const TEST_IMAGE = 'localhost/sextant/e2e-netcheck:1';

const sha256File = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

/** Builds the archive under `work`; CGO off: static, no libc (a glibc-static busybox segfaulted in the pods). */
export async function buildTestImage(work: string): Promise<string> {
  const root = join(work, 'test-image');
  const rootfs = join(root, 'rootfs');
  await mkdir(join(rootfs, 'tmp'), { recursive: true });
  await run(
    'go',
    ['build', '-trimpath', '-buildvcs=false', '-ldflags=-s -w', '-o', join(rootfs, 'netcheck'), '.'],
    {
      cwd: join(import.meta.dirname, 'netcheck'),
      env: { ...process.env, CGO_ENABLED: '0' },
    },
  );
  const layer = join(root, 'layer.tar');
  const tar = ['--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '--sort=name'];
  await run('tar', ['-C', rootfs, ...tar, '-cf', layer, 'netcheck', 'tmp']);
  const layerDigest = await sha256File(layer);
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Entrypoint: ['/netcheck'] },
    rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] },
    history: [{ created: '1970-01-01T00:00:00Z', created_by: 'sextant e2e' }],
  });
  const configDigest = createHash('sha256').update(config).digest('hex');
  const archiveDir = join(root, 'archive');
  await mkdir(archiveDir, { recursive: true });
  await copyFile(layer, join(archiveDir, `${layerDigest}.tar`));
  await writeFile(join(archiveDir, `${configDigest}.json`), config);
  await writeFile(
    join(archiveDir, 'manifest.json'),
    JSON.stringify([
      { Config: `${configDigest}.json`, RepoTags: [TEST_IMAGE], Layers: [`${layerDigest}.tar`] },
    ]),
  );
  const out = join(root, 'e2e-netcheck.tar');
  await run('tar', ['-C', archiveDir, ...tar, '-cf', out, '.']);
  return out;
}
