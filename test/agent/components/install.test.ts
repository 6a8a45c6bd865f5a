import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { ComponentInstallError, installComponents } from '../../../agent/components/install.js';
import { ComponentSpecError, displayUrl, validateComponents } from '../../../agent/components/spec.js';
import { recordingLog } from '../../harness/recording-log.js';
import { tempDir } from '../../harness/temp-dir.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A minimal ustar writer, so tests can build archives that GNU tar would refuse to create. */
function tarEntry(
  name: string,
  opts: { type?: string; data?: Buffer; link?: string; mode?: number } = {},
): Buffer {
  const data = opts.data ?? Buffer.alloc(0);
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(`${(opts.mode ?? 0o644).toString(8).padStart(7, '0')}\0`, 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  h.write('00000000000\0', 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write(opts.type ?? '0', 156, 'latin1');
  if (opts.link) h.write(opts.link, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([h, data, pad]);
}
const tarGz = (...entries: Buffer[]) => gzipSync(Buffer.concat([...entries, Buffer.alloc(1024)]));

describe('installComponents', () => {
  const root = tempDir('sextant-components-');
  let server: Server;
  let base: string;
  const files = new Map<string, Buffer>();
  let requests = 0;

  before(async () => {
    server = createServer((req, res) => {
      requests++;
      if (req.url === '/hang') return; // never answers
      const body = files.get(req.url ?? '');
      if (!body) {
        res.writeHead(404).end('not found');
        return;
      }
      res.writeHead(200, { 'content-length': body.length }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    files.set('/kubelet', Buffer.from('#!/bin/sh\necho kubelet\n'));
    files.set('/kubectl', Buffer.from('#!/bin/sh\necho kubectl\n'));
    files.set('/big', Buffer.alloc(64 * 1024, 1));
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const dir = async (name: string) => {
    const d = join(root, name);
    await mkdir(d, { recursive: true });
    return d;
  };

  it('installs over HTTP and file:// with mode 0755', async () => {
    const d = await dir('happy');
    const local = join(d, 'src-crictl');
    await writeFile(local, 'crictl-binary');
    const log = recordingLog();
    await installComponents(
      [
        {
          url: `${base}/kubelet`,
          sha256: sha(files.get('/kubelet')!),
          installPath: join(d, 'bin/kubelet'),
          extract: false,
        },
        {
          url: pathToFileURL(local).href,
          sha256: sha(Buffer.from('crictl-binary')),
          installPath: join(d, 'bin/crictl'),
          extract: false,
        },
      ],
      { log },
    );
    assert.equal(await readFile(join(d, 'bin/kubelet'), 'utf8'), files.get('/kubelet')!.toString());
    assert.equal(await readFile(join(d, 'bin/crictl'), 'utf8'), 'crictl-binary');
    assert.equal((await stat(join(d, 'bin/kubelet'))).mode & 0o777, 0o755);
    assert.equal((await stat(join(d, 'bin/crictl'))).mode & 0o777, 0o755);
    assert.deepEqual((await readdir(join(d, 'bin'))).sort(), ['crictl', 'kubelet'], 'no temp files left');
    assert.ok(log.lines.some((l) => l.includes('component installed')));
  });

  it('installs under rootfs and replaces an existing file', async () => {
    const rootfs = await dir('rootfs');
    await mkdir(join(rootfs, 'usr/bin'), { recursive: true });
    await writeFile(join(rootfs, 'usr/bin/kubectl'), 'old');
    await installComponents(
      [
        {
          url: `${base}/kubectl`,
          sha256: sha(files.get('/kubectl')!),
          installPath: '/usr/bin/kubectl',
          extract: false,
        },
      ],
      { log: recordingLog(), rootfs },
    );
    assert.equal(await readFile(join(rootfs, 'usr/bin/kubectl'), 'utf8'), files.get('/kubectl')!.toString());
    assert.deepEqual(await readdir(join(rootfs, 'usr/bin')), ['kubectl'], 'no backup left behind');
  });

  it('refuses a hash mismatch, names the component and both hashes, and writes nothing', async () => {
    const d = await dir('mismatch');
    const wrong = 'a'.repeat(64);
    const err = await installComponents(
      [{ url: `${base}/kubelet`, sha256: wrong, installPath: join(d, 'kubelet'), extract: false }],
      { log: recordingLog() },
    ).catch((e: unknown) => e);
    assert.ok(err instanceof ComponentInstallError);
    assert.match(err.message, /component 0 \(http:\/\/127\.0\.0\.1:\d+\/kubelet\)/);
    assert.match(err.message, new RegExp(`expected ${wrong}`));
    assert.match(err.message, new RegExp(`got ${sha(files.get('/kubelet')!)}`));
    assert.deepEqual(await readdir(d), [], 'nothing written, temp removed');
  });

  it('reports an unreachable URL with the component and the cause', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const d = await dir('unreachable');
    await assert.rejects(
      installComponents(
        [
          {
            url: `http://127.0.0.1:${port}/x`,
            sha256: 'b'.repeat(64),
            installPath: join(d, 'x'),
            extract: false,
          },
        ],
        { log: recordingLog() },
      ),
      (e: Error) => {
        assert.match(e.message, new RegExp(`component 0 \\(http://127.0.0.1:${port}/x\\): download failed`));
        assert.match(e.message, /ECONNREFUSED/);
        return true;
      },
    );
    assert.deepEqual(await readdir(d), []);
  });

  it('reports HTTP errors, timeouts and the size cap', async () => {
    const d = await dir('http-errors');
    const one = (url: string) => [{ url, sha256: 'c'.repeat(64), installPath: join(d, 'x'), extract: false }];
    await assert.rejects(
      installComponents(one(`${base}/missing`), { log: recordingLog() }),
      /component 0 .*HTTP 404/,
    );
    await assert.rejects(
      installComponents(one(`${base}/hang`), { log: recordingLog(), timeoutMs: 200 }),
      /component 0 .*timed out after 200 ms/,
    );
    await assert.rejects(
      installComponents(one(`${base}/big`), { log: recordingLog(), maxBytes: 1024 }),
      /component 0 .*limit of 1024/,
    );
    await assert.rejects(
      installComponents(one(pathToFileURL(join(d, 'nope')).href), { log: recordingLog() }),
      /component 0 \(file:.*ENOENT/,
    );
    assert.deepEqual(await readdir(d), []);
  });

  it('honours an abort signal', async () => {
    const d = await dir('abort');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(
      installComponents(
        [{ url: `${base}/hang`, sha256: 'c'.repeat(64), installPath: join(d, 'x'), extract: false }],
        {
          log: recordingLog(),
          signal: ac.signal,
        },
      ),
      /aborted/,
    );
  });

  it('validates every field before fetching anything', async () => {
    const ok = {
      url: `${base}/kubelet`,
      sha256: sha(files.get('/kubelet')!),
      installPath: '/opt/x',
      extract: false,
    };
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ url: 'ftp://host/x' }, 'url', /scheme ftp: not allowed/],
      [{ url: 'https://user:pw@host/x' }, 'url', /user name or password/],
      [{ url: 'not a url' }, 'url', /not a valid URL/],
      [{ url: '' }, 'url', /missing/],
      [{ url: 'file://remote/etc/passwd' }, 'url', /remote host/],
      [{ sha256: 'ABC' }, 'sha256', /64 hex digits/],
      [{ sha256: 5 }, 'sha256', /64 hex digits.*got 5/],
      [{ checksum: 'x' }, 'checksum', /unknown key \(expected one of: url, sha256, installPath, extract\)/],
      [{ installPath: undefined }, 'installPath', /missing|got nothing/],
      [{ sha256: 'g'.repeat(64) }, 'sha256', /64 hex digits/],
      [{ installPath: 'relative/x' }, 'installPath', /absolute/],
      [{ installPath: '/opt/../etc/x' }, 'installPath', /".."/],
      [{ installPath: '/opt//x' }, 'installPath', /normalized/],
      [{ installPath: '/' }, 'installPath', /normalized/],
      [{ extract: 'yes' }, 'extract', /expected true or false, got "yes"/],
    ];
    const before = requests;
    for (const [patch, field, why] of cases) {
      const err = await installComponents([ok, { ...ok, ...patch }] as never, { log: recordingLog() }).catch(
        (e) => e,
      );
      assert.ok(err instanceof ComponentSpecError, `${JSON.stringify(patch)} → ${err}`);
      assert.equal(err.index, 1);
      assert.equal(err.field, field);
      assert.match(err.message, /^component 1 /);
      assert.match(err.message, why);
    }
    assert.throws(
      () => validateComponents([null]),
      /^ComponentSpecError: component 0: expected a mapping, got null$/,
    );
    assert.equal(requests, before, 'nothing was fetched');
  });

  it('refuses two components with the same file target', async () => {
    const c = {
      url: `${base}/kubelet`,
      sha256: sha(files.get('/kubelet')!),
      installPath: '/opt/k',
      extract: false,
    };
    await assert.rejects(
      installComponents([c, c], { log: recordingLog() }),
      /component 1 .*also the target of component 0/,
    );
  });

  it('hides credentials and query strings of URLs in messages', () => {
    assert.equal(displayUrl('https://user:pw@h.example/p?sig=secret#f'), 'https://h.example/p?…');
    assert.equal(displayUrl('::'), '<invalid url>');
  });

  it('extracts a tarball made by tar, keeping modes and relative links', async () => {
    const d = await dir('extract');
    const src = join(d, 'src');
    await mkdir(join(src, 'sub'), { recursive: true });
    await writeFile(join(src, 'bridge'), 'bridge-plugin', { mode: 0o755 });
    await writeFile(join(src, 'sub/readme'), 'hello', { mode: 0o644 });
    await symlink('bridge', join(src, 'alias'));
    execFileSync('tar', ['-czf', join(d, 'cni.tgz'), '-C', src, '.']);
    const tgz = await readFile(join(d, 'cni.tgz'));
    files.set('/cni.tgz', tgz);
    const target = join(d, 'opt/cni/bin');
    await mkdir(target, { recursive: true });
    await writeFile(join(target, 'preexisting'), 'keep me');
    await installComponents(
      [{ url: `${base}/cni.tgz`, sha256: sha(tgz), installPath: target, extract: true }],
      {
        log: recordingLog(),
      },
    );
    assert.equal(await readFile(join(target, 'bridge'), 'utf8'), 'bridge-plugin');
    assert.equal((await stat(join(target, 'bridge'))).mode & 0o777, 0o755);
    assert.equal((await stat(join(target, 'sub/readme'))).mode & 0o777, 0o644);
    assert.equal(await readlink(join(target, 'alias')), 'bridge');
    assert.equal(await readFile(join(target, 'preexisting'), 'utf8'), 'keep me', 'extract merges');
    assert.deepEqual((await readdir(join(d, 'opt/cni'))).sort(), ['bin'], 'no staging left');
  });

  it('handles long names (GNU and pax) and strips setuid bits', async () => {
    const d = await dir('longnames');
    const long = `${'d'.repeat(80)}/${'f'.repeat(80)}`;
    const paxRecord = (k: string, v: string) => {
      let len = k.length + v.length + 3;
      len += String(len).length;
      if (String(len).length !== String(len - String(len).length).length) len++;
      return `${len} ${k}=${v}\n`;
    };
    const paxLong = `pax/${'p'.repeat(120)}`;
    const tgz = tarGz(
      tarEntry('././@LongLink', { type: 'L', data: Buffer.from(`${long}\0`) }),
      tarEntry('trunc', { data: Buffer.from('gnu'), mode: 0o4755 }),
      tarEntry('PaxHeaders/x', { type: 'x', data: Buffer.from(paxRecord('path', paxLong)) }),
      tarEntry('trunc2', { data: Buffer.from('pax') }),
      tarEntry('g', { type: 'g', data: Buffer.from(paxRecord('comment', 'x')) }),
    );
    files.set('/long.tgz', tgz);
    const target = join(d, 'out');
    await installComponents(
      [{ url: `${base}/long.tgz`, sha256: sha(tgz), installPath: target, extract: true }],
      {
        log: recordingLog(),
      },
    );
    assert.equal(await readFile(join(target, long), 'utf8'), 'gnu');
    assert.equal((await stat(join(target, long))).mode & 0o7777, 0o755);
    assert.equal(await readFile(join(target, paxLong), 'utf8'), 'pax');
  });

  const malicious: [string, Buffer, RegExp][] = [
    ['path traversal', tarGz(tarEntry('../evil', { data: Buffer.from('x') })), /"\.\." in path/],
    ['nested traversal', tarGz(tarEntry('a/../../evil', { data: Buffer.from('x') })), /"\.\." in path/],
    ['absolute path', tarGz(tarEntry('/etc/evil', { data: Buffer.from('x') })), /absolute path/],
    ['absolute symlink', tarGz(tarEntry('l', { type: '2', link: '/etc/passwd' })), /symlink to absolute/],
    ['escaping symlink', tarGz(tarEntry('l', { type: '2', link: '../../outside' })), /points outside/],
    [
      'write through a symlink',
      tarGz(tarEntry('d', { type: '2', link: '.' }), tarEntry('d/x', { data: Buffer.from('x') })),
      /runs through the symlink d/,
    ],
    [
      'chained symlink escape',
      tarGz(tarEntry('l1', { type: '2', link: '.' }), tarEntry('a/l2', { type: '2', link: '../l1/..' })),
      /resolves outside|points outside/,
    ],
    ['dangling symlink', tarGz(tarEntry('l', { type: '2', link: 'nothing' })), /points nowhere/],
    ['hard link', tarGz(tarEntry('h', { type: '1', link: 'x' })), /hard links/],
    ['char device', tarGz(tarEntry('dev', { type: '3' })), /device files/],
    ['block device', tarGz(tarEntry('dev', { type: '4' })), /device files/],
    ['fifo', tarGz(tarEntry('p', { type: '6' })), /FIFOs/],
    ['not gzip', Buffer.from('plain text'), /cannot unpack/],
    ['bad checksum', gzipSync(Buffer.alloc(512, 7)), /checksum/],
    ['truncated', gzipSync(tarEntry('f', { data: Buffer.alloc(2000) }).subarray(0, 1024)), /truncated/],
  ];
  for (const [name, tgz, why] of malicious) {
    it(`refuses a malicious tarball: ${name}`, async () => {
      const d = await dir(`evil-${name.replace(/\W+/g, '-')}`);
      const path = `/${name.replace(/\W+/g, '-')}.tgz`;
      files.set(path, tgz);
      const err = await installComponents(
        [{ url: `${base}${path}`, sha256: sha(tgz), installPath: join(d, 'inst/bin'), extract: true }],
        { log: recordingLog() },
      ).catch((e: unknown) => e);
      assert.ok(err instanceof ComponentInstallError, String(err));
      assert.match(err.message, /^component 0 /);
      assert.match(err.message, why);
      assert.deepEqual(await readdir(d), [], 'nothing left: no install dir, no staging');
      assert.deepEqual(await readdir(root).then((l) => l.includes('evil')), false);
    });
  }

  it('refuses an archive that unpacks past the cap (gzip bomb)', async () => {
    const d = await dir('bomb');
    const tgz = tarGz(tarEntry('zeros', { data: Buffer.alloc(1024 * 1024) }));
    files.set('/bomb.tgz', tgz);
    await assert.rejects(
      installComponents(
        [{ url: `${base}/bomb.tgz`, sha256: sha(tgz), installPath: join(d, 'x'), extract: true }],
        {
          log: recordingLog(),
          maxExtractedBytes: 64 * 1024,
        },
      ),
      /unpacks to more than 65536 bytes/,
    );
    assert.deepEqual(await readdir(d), []);
  });

  it('rolls back installed components when a later download fails', async () => {
    const d = await dir('rollback-download');
    await mkdir(join(d, 'bin'));
    await writeFile(join(d, 'bin/kubelet'), 'old kubelet');
    await assert.rejects(
      installComponents(
        [
          {
            url: `${base}/kubelet`,
            sha256: sha(files.get('/kubelet')!),
            installPath: join(d, 'bin/kubelet'),
            extract: false,
          },
          {
            url: `${base}/kubectl`,
            sha256: sha(files.get('/kubectl')!),
            installPath: join(d, 'new/kubectl'),
            extract: false,
          },
          {
            url: `${base}/missing`,
            sha256: 'd'.repeat(64),
            installPath: join(d, 'bin/third'),
            extract: false,
          },
        ],
        { log: recordingLog() },
      ),
      /component 2 /,
    );
    assert.equal(await readFile(join(d, 'bin/kubelet'), 'utf8'), 'old kubelet');
    assert.deepEqual(await readdir(d), ['bin'], 'directories created by the install are removed');
    assert.deepEqual(await readdir(join(d, 'bin')), ['kubelet']);
  });

  it('rolls back moves already made when the commit fails half-way', async () => {
    const d = await dir('rollback-commit');
    await mkdir(join(d, 'bin'));
    await writeFile(join(d, 'bin/kubelet'), 'old kubelet');
    await mkdir(join(d, 'bin/blocker')); // a directory where component 2 wants a file
    const tgz = tarGz(tarEntry('plugin', { data: Buffer.from('p'), mode: 0o755 }));
    files.set('/plugins.tgz', tgz);
    const err = await installComponents(
      [
        {
          url: `${base}/kubelet`,
          sha256: sha(files.get('/kubelet')!),
          installPath: join(d, 'bin/kubelet'),
          extract: false,
        },
        { url: `${base}/plugins.tgz`, sha256: sha(tgz), installPath: join(d, 'cni'), extract: true },
        {
          url: `${base}/kubectl`,
          sha256: sha(files.get('/kubectl')!),
          installPath: join(d, 'bin/blocker'),
          extract: false,
        },
      ],
      { log: recordingLog() },
    ).catch((e: unknown) => e);
    assert.ok(err instanceof ComponentInstallError);
    assert.match(err.message, /component 2 .*cannot move into place: .*is a directory/);
    assert.equal(await readFile(join(d, 'bin/kubelet'), 'utf8'), 'old kubelet');
    assert.deepEqual((await readdir(d)).sort(), ['bin']);
    assert.deepEqual((await readdir(join(d, 'bin'))).sort(), ['blocker', 'kubelet']);
  });
});
