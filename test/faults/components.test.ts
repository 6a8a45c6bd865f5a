// A component download interrupted by the agent's death (SIGKILL mid-transfer) leaves a partial file
// in the install directory; the next install removes it. The transfer is real HTTP, throttled so the kill lands
// while the file is half written.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { installComponents } from '../../agent/components/install.js';
import { createLogger } from '../../agent/log/index.js';
import { tempDir } from '../harness/temp-dir.js';

const REPO = resolve(import.meta.dirname, '../..');
const body = randomBytes(4 * 1024 * 1024);
const sha256 = createHash('sha256').update(body).digest('hex');

describe('partial component downloads are resumed or refused', { timeout: 60_000 }, () => {
  const root = tempDir('sextant-components-faults-');
  let server: Server;
  let url: string;
  before(async () => {
    // The first half at once, then nothing: the download is in flight, half written, until the kill.
    server = createServer((req, res) => {
      res.writeHead(200, { 'content-length': String(body.length) });
      if (req.url === '/slow') res.write(body.subarray(0, body.length / 2));
      else res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('an installer killed mid-download leaves a partial file; the next install removes it and installs', async () => {
    const rootfs = join(root, 'node');
    const bin = join(rootfs, 'usr/local/bin');
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(REPO, 'test/faults/tools/install-component.ts'),
        `${url}/slow`,
        sha256,
        rootfs,
      ],
      { cwd: REPO, stdio: 'ignore' },
    );
    // Wait until the partial file holds the first half.
    for (let i = 0; i < 200; i++) {
      const names = existsSync(bin) ? await readdir(bin) : [];
      const partial = names.find((n) => n.startsWith('.sextant-download.'));
      if (partial && (await readFile(join(bin, partial))).length >= body.length / 2) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const left = (await readdir(bin)).filter((n) => n.startsWith('.sextant-'));
    assert.equal(left.length, 1, 'the killed installer left its partial download');

    // A half-unpacked staging directory from an older run, too.
    await mkdir(join(bin, '.sextant-stage-AbC123'));
    await writeFile(join(bin, '.sextant-stage-AbC123/kubelet'), 'half');
    const old = new Date(Date.now() - 3_600_000);
    await utimes(join(bin, left[0]!), old, old);
    await utimes(join(bin, '.sextant-stage-AbC123'), old, old);

    await installComponents([{ url, sha256, installPath: '/usr/local/bin/kubeadm', extract: false }], {
      rootfs,
      log: createLogger({ sink: 'memory' }),
    });
    assert.deepEqual(await readdir(bin), ['kubeadm']);
    assert.ok((await readFile(join(bin, 'kubeadm'))).equals(body));
  });

  it('what an install running now has in flight is not touched (only leftovers older than this agent)', async () => {
    const dir = join(root, 'fresh/usr/local/bin');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, '.sextant-download.0123456789ab.tmp'), 'in flight');
    await installComponents([{ url, sha256, installPath: '/usr/local/bin/kubeadm', extract: false }], {
      rootfs: join(root, 'fresh'),
      log: createLogger({ sink: 'memory' }),
    });
    assert.deepEqual((await readdir(dir)).sort(), ['.sextant-download.0123456789ab.tmp', 'kubeadm']);
  });
});
