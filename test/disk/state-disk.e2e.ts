// The state disk in a real kernel (QEMU TCG, Debian 12's cloud kernel: device-mapper, dm-crypt, dm-integrity), run
// by the real disk-mapper (test/disk/guest/state-disk-guest.ts): first boot formats + wipes with integrity, writes a
// marker, commits the cluster key; the raw disk read from the host holds none of the marker; a reboot reopens with
// the rejoin key and refuses a wrong one; a header the host swapped is refused at boot; flipped raw blocks read as
// I/O errors. Run (root, one VM at a time): bash test/e2e/run.sh test/disk/state-disk.e2e.ts
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { rewriteHeaderJson } from '../agent/disk/luks-files.js';

const execFileAsync = promisify(execFile);
const DISK_MIB = 128;

describe('state disk in a VM', () => {
  let dir: string;
  const state = () => join(dir, 'state.img');
  const results: Record<string, Record<string, unknown>> = {};

  async function boot(mode: string, disks: string[]): Promise<Record<string, unknown>> {
    const log = join(dir, `${mode}.log`);
    const args = [
      '-accel',
      'tcg,thread=multi',
      '-cpu',
      'max',
      '-smp',
      '2',
      '-m',
      '1536',
      '-nodefaults',
      '-display',
      'none',
      '-serial',
      `file:${log}`,
      '-no-reboot',
      '-kernel',
      join(dir, 'vmlinuz'),
      '-initrd',
      join(dir, 'initrd.cpio'),
      '-append',
      'console=ttyS0 panic=-1 rdinit=/init',
      '-fw_cfg',
      `name=opt/sextant/disk-test,string=${mode}`,
    ];
    for (const d of disks) args.push('-drive', `file=${d},if=virtio,format=raw`);
    const t0 = performance.now();
    await execFileAsync('timeout', ['900', 'qemu-system-x86_64', ...args]);
    const text = await readFile(log, 'utf8');
    const lines = text.split('\n').filter((l) => l.startsWith('DISK-RESULT '));
    const parsed = lines.map((l) => JSON.parse(l.slice('DISK-RESULT '.length)) as Record<string, unknown>);
    const error = parsed.find((p) => p.step === 'error');
    assert.equal(error, undefined, `guest failed in ${mode}: ${String(error?.message)}`);
    for (const p of parsed) results[String(p.step)] = p;
    const mine = parsed.find((p) => p.step === mode);
    assert.ok(mine, `no result for ${mode} in ${log}`);
    mine.bootSeconds = Math.round((performance.now() - t0) / 100) / 10;
    return mine;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sextant-disk-e2e-'));
    const out = await execFileAsync('bash', ['test/disk/build-guest.sh', dir], { maxBuffer: 1 << 22 });
    process.stderr.write(out.stderr);
    for (const name of ['state.img', 'baseline.img']) {
      await writeFile(join(dir, name), '');
      await truncate(join(dir, name), DISK_MIB << 20);
    }
  });
  after(async () => {
    console.log(
      `figures (disk ${DISK_MIB} MiB, TCG 2 vCPU, host load ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}):`,
    );
    console.log(JSON.stringify(results, null, 1));
    await rm(dir, { recursive: true, force: true });
  });

  let marker = '';
  let uuid = '';
  it('first boot formats with integrity, wipes, opens, writes and commits the cluster key', async () => {
    const r = await boot('first', [state(), join(dir, 'baseline.img')]);
    marker = String(r.marker);
    uuid = String(r.uuid);
    assert.match(marker, /^SEXTANT-MARKER-[0-9a-f]{16}$/);
    assert.match(uuid, /^[0-9a-f-]{36}$/);
  });

  it('the raw disk read from the host holds none of the marker', async () => {
    const raw = await readFile(state());
    assert.equal(raw.indexOf(marker), -1);
    assert.ok(
      raw.indexOf(Buffer.from('LUKS\xba\xbe', 'latin1')) === 0,
      'the disk starts with its LUKS2 header',
    );
  });

  it('a reboot reopens with the rejoin key (a wrong key refused) and finds the marker', async () => {
    const r = await boot('reopen', [state()]);
    assert.equal(r.uuid, uuid);
    assert.equal(r.wrongKey, 'WrongDiskKeyError');
    assert.equal(r.marker, marker);
  });

  it('five flipped raw blocks read as I/O errors, not garbage', async () => {
    const handle = await open(state(), 'r+');
    // inside the data segment (16 MiB header), where the first boot wrote its 64 MiB
    for (let i = 0; i < 5; i++) await handle.write(Buffer.alloc(4096, 0x5a), 0, 4096, (40 + i * 3) << 20);
    await handle.close();
    const r = await boot('flipped', [state()]);
    assert.ok(
      Number(r.eioBlocks) >= 5,
      `expected at least 5 unreadable 4K blocks, got ${String(r.eioBlocks)}`,
    );
  });

  it('a header the host swapped (cipher_null) is refused at boot, naming the difference', async () => {
    await rewriteHeaderJson(state(), (h) => {
      h.segments['0'].encryption = 'cipher_null-ecb';
    });
    const r = await boot('swapped', [state()]);
    assert.equal(r.refused, true);
    assert.match(
      String(r.message),
      /segments\.0\.encryption: expected "aes-xts-plain64", got "cipher_null-ecb"/,
    );
  });
});
