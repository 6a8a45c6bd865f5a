// What the VM end to end hands the nodes as components (URL + SHA-256 each, served from the host over HTTP), never
// baked into the measured image:
//   - the Kubernetes node binaries (kubeadm, kubelet, kubectl, crictl) -> /usr/local/bin/<name>
//   - the CNI plugins (bridge, host-local, loopback, portmap)          -> /opt/cni/bin/<name>
//   - the container images as archives                                 -> /opt/sextant/images/<name>.tar (the image's
//     kubeadm wrapper imports them into containerd before init/join: there is no registry)
// plus the e2e's own test image (test/e2e/netcheck, built here; no registry, no base image).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ComponentConfig } from '../../cli/config/schema.js';

const run = promisify(execFile);

/** The e2e's own workload image: test/e2e/netcheck, one static Go binary. */
export const TEST_IMAGE = 'localhost/sextant/e2e-netcheck:1';

export interface Payload {
  /** name -> file served at /<name> */
  files: Map<string, string>;
  components(baseUrl: string): Promise<ComponentConfig[]>;
}

const sha256File = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

/**
 * A docker-archive (what `docker save` writes, which `ctr images import` names by RepoTags) holding one layer:
 * /netcheck, built here with the Go toolchain (CGO off: static, no libc; a glibc-static busybox segfaulted
 * resolving names in the pods).
 */
export async function buildTestImage(work: string): Promise<string> {
  const root = join(work, 'test-image');
  const rootfs = join(root, 'rootfs');
  await mkdir(join(rootfs, 'tmp'), { recursive: true });
  await run('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', join(rootfs, 'netcheck'), '.'], {
    cwd: join(import.meta.dirname, 'netcheck'),
    env: { ...process.env, CGO_ENABLED: '0' },
  });
  const layer = join(root, 'layer.tar');
  await run('tar', [
    '-C',
    rootfs,
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--mtime=@0',
    '-cf',
    layer,
    'netcheck',
    'tmp',
  ]);
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
  await run('tar', ['-C', archiveDir, '--owner=0', '--group=0', '--mtime=@0', '-cf', out, '.']);
  return out;
}

/**
 * The Kubernetes build and the test image as components, one file each (extract: false): `kubernetesDir` is what
 * scripts/build-kubernetes.sh prints (bin/ with the node binaries, bin/cni/ with the plugins), `imagesDir` what
 * scripts/build-kubernetes-images.sh prints (one archive per image, *.tar). Single files, not tarballs: the image
 * archives are compressed already, and a node under TCG spent ~100 s unpacking gzip'd bundles of them.
 */
export async function realKubernetesPayload(
  kubernetesDir: string,
  imagesDir: string,
  work: string,
): Promise<Payload> {
  const bin = join(kubernetesDir, 'bin');
  const files = new Map<string, string>();
  const targets = new Map<string, string>();
  const add = (name: string, path: string, installPath: string) => {
    files.set(name, path);
    targets.set(name, installPath);
  };
  for (const b of ['kubeadm', 'kubelet', 'kubectl', 'crictl']) add(b, join(bin, b), `/usr/local/bin/${b}`);
  for (const p of ['bridge', 'host-local', 'loopback', 'portmap']) {
    add(`cni-${p}`, join(bin, 'cni', p), `/opt/cni/bin/${p}`);
  }
  const archives = (await readdir(imagesDir)).filter((f) => f.endsWith('.tar'));
  if (archives.length === 0) throw new Error(`${imagesDir} holds no image archives`);
  for (const a of archives) add(`image-${a}`, join(imagesDir, a), `/opt/sextant/images/${a}`);
  await mkdir(work, { recursive: true });
  add('image-e2e-netcheck.tar', await buildTestImage(work), '/opt/sextant/images/e2e-netcheck.tar');

  return {
    files,
    async components(baseUrl) {
      return Promise.all(
        [...files].map(async ([name, path]) => ({
          url: `${baseUrl}/${name}`,
          sha256: await sha256File(path),
          installPath: targets.get(name)!,
          extract: false,
        })),
      );
    },
  };
}

/** Serves the payload's files by name (GET /<name>) on host:0; streams, so large archives stay on disk. */
export async function servePayload(
  payload: Payload,
  host: string,
): Promise<{ server: Server; baseUrl: string }> {
  const { createReadStream } = await import('node:fs');
  const server = createServer(async (req, res) => {
    const file = payload.files.get((req.url ?? '/').slice(1));
    if (!file) {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.setHeader('content-length', String((await stat(file)).size));
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  return { server, baseUrl: `http://${host}:${(server.address() as AddressInfo).port}` };
}
