// @tier system: the Kubernetes build (scripts/build-kubernetes.sh)
// The image archives scripts/build-kubernetes-images.sh writes from the built binaries: named as the built
// kubeadm asks for them, digests as listed, deterministic, and accepted by containerd — imported with
// `ctr -n k8s.io images import` into a private Debian containerd and run, as the node will run them.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

const REPO = resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

interface ImageEntry {
  ref: string;
  file: string;
  sha256: string;
  size: number;
}

describe('Kubernetes image archives', { timeout: 300_000 }, () => {
  let images: string;
  let bin: string;
  let list: ImageEntry[];
  let work: string;
  let containerd: ChildProcess | undefined;
  let socket: string;
  const ctr = (...args: string[]) =>
    run('ctr', ['--address', socket, '-n', 'k8s.io', ...args], { timeout: 60_000, maxBuffer: 16 << 20 });

  before(async () => {
    // Cached after the first build (CI builds before the tests): seconds.
    images = execFileSync('bash', [join(REPO, 'scripts/build-kubernetes-images.sh')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
      .toString()
      .trim();
    bin = join(images, '..', 'bin');
    list = JSON.parse(readFileSync(join(images, 'images.json'), 'utf8')) as ImageEntry[];
    work = await mkdtemp(join(tmpdir(), 'sextant-containerd-'));
    socket = join(work, 'containerd.sock');
    writeFileSync(
      join(work, 'config.toml'),
      `version = 2\nroot = "${work}/root"\nstate = "${work}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${socket}"\n`,
    );
    containerd = spawn('containerd', ['--config', join(work, 'config.toml')], { stdio: 'ignore' });
    const deadline = Date.now() + 30_000;
    while (!existsSync(socket)) {
      assert.ok(Date.now() < deadline, 'containerd did not create its socket within 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  after(async () => {
    containerd?.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    containerd?.kill('SIGKILL');
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('names every image exactly as the built kubeadm lists them for imageRepository localhost/sextant', () => {
    const cfg = join(work, 'kubeadm.yaml');
    writeFileSync(
      cfg,
      'apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.4\nimageRepository: localhost/sextant\n',
    );
    const wanted = execFileSync(join(bin, 'kubeadm'), ['config', 'images', 'list', '--config', cfg])
      .toString()
      .trim()
      .split('\n')
      .sort();
    assert.deepEqual(list.map((i) => i.ref).sort(), wanted);
  });

  it('lists the digest and size of each archive, and ociarchive writes the same bytes twice', () => {
    for (const i of list) {
      const data = readFileSync(join(images, i.file));
      assert.equal(createHash('sha256').update(data).digest('hex'), i.sha256, i.file);
      assert.equal(data.length, i.size, i.file);
    }
    const again = (out: string) =>
      execFileSync(join(bin, 'ociarchive'), [
        '-out',
        out,
        '-ref',
        'localhost/sextant/pause:3.10.1',
        '-created',
        '2026-02-10T12:53:36Z',
        '-env',
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        '-dir',
        '/tmp=1777',
        '-entrypoint',
        '/pause',
        '-add',
        `/pause=${join(bin, 'pause')}`,
      ]);
    again(join(work, 'a.tar'));
    again(join(work, 'b.tar'));
    const digest = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
    assert.equal(digest(join(work, 'a.tar')), digest(join(work, 'b.tar')));
    assert.equal(digest(join(work, 'a.tar')), list.find((i) => i.file === 'pause.tar')!.sha256);
  });

  it('containerd imports all of them under their names, and each runs', async () => {
    for (const i of list) await ctr('images', 'import', join(images, i.file));
    const refs = (await ctr('images', 'ls', '-q')).stdout.split('\n');
    for (const i of list) assert.ok(refs.includes(i.ref), `${i.ref} not among ${refs.join(' ')}`);

    const version = async (ref: string, ...cmd: string[]) =>
      (await ctr('run', '--rm', ref, `v-${Math.random().toString(36).slice(2, 8)}`, ...cmd)).stdout;
    const ref = (name: string) => list.find((i) => i.ref.includes(`/${name}:`))!.ref;
    for (const c of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy']) {
      assert.match(await version(ref(c), c, '--version'), /^Kubernetes v1\.34\.4/, c);
    }
    assert.match(await version(ref('etcd'), 'etcd', '--version'), /etcd Version: 3\.6\.5/);
    assert.match(await version(ref('coredns'), '/coredns', '-version'), /CoreDNS-1\.12\.1/);
    assert.match(await version(ref('pause'), '/pause', '-v'), /3\.10\.1/);
    assert.match(await version(ref('kube-proxy'), 'nft', '--version'), /nftables v1\./);

    // kube-proxy's nftables mode: nft in the image checks a ruleset against the kernel (-c: nothing applied).
    const probe = join(work, 'probe.nft');
    writeFileSync(
      probe,
      'table inet sextant_probe {\n  chain c {\n    type filter hook input priority 0;\n  }\n}\n',
    );
    await ctr(
      'run',
      '--rm',
      '--privileged',
      '--mount',
      `type=bind,src=${probe},dst=/probe.nft,options=rbind:ro`,
      ref('kube-proxy'),
      'nft-probe',
      'nft',
      '-c',
      '-f',
      '/probe.nft',
    );

    // The sandbox: pause keeps running as PID 1 and exits on SIGTERM, as the runtime stops it.
    await ctr('run', '-d', ref('pause'), 'sandbox');
    assert.match((await ctr('task', 'ls')).stdout, /sandbox\s+\d+\s+RUNNING/);
    await ctr('task', 'kill', '-s', 'SIGTERM', 'sandbox');
    const deadline = Date.now() + 10_000;
    while (!/sandbox\s+\d+\s+STOPPED/.test((await ctr('task', 'ls')).stdout)) {
      assert.ok(Date.now() < deadline, 'pause did not stop on SIGTERM within 10 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    await ctr('task', 'delete', 'sandbox');
    await ctr('container', 'rm', 'sandbox');
  });
});
