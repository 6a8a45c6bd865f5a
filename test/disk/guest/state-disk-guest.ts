// Runs inside the state-disk test VM (test/disk/state-disk.e2e.ts): the real disk-mapper on /dev/vda with
// device-mapper, dm-crypt and dm-integrity. Prints one "DISK-RESULT {json}" line per step.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { DiskMapper, WrongDiskKeyError } from '../../../agent/disk/disk-mapper.js';
import { HeaderRefusedError } from '../../../agent/disk/header-policy.js';
import { STATE_DISK_LAYOUT } from '../../../agent/disk/layout.js';
import { deriveDiskKey } from '../../../common/keys.js';

const master = { key: Buffer.alloc(32, 0x11), salt: Buffer.alloc(32, 0x22) };
const mode = process.argv[2] ?? 'first';
const report = (step: string, data: Record<string, unknown>) =>
  console.log(`DISK-RESULT ${JSON.stringify({ step, ...data })}`);
const sh = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await fn();
  return [value, Math.round(performance.now() - t0)];
}

/** Writes `mib` MiB of `pattern` to `path` in 4 MiB blocks and fsyncs; returns MiB/s. */
async function writeThroughput(path: string, mib: number, pattern: Buffer): Promise<number> {
  const block = Buffer.alloc(4 << 20);
  for (let i = 0; i < block.length; i += pattern.length) pattern.copy(block, i);
  const handle = await open(path, 'r+');
  const t0 = performance.now();
  for (let i = 0; i < mib / 4; i++) await handle.write(block, 0, block.length, i * block.length);
  await handle.sync();
  await handle.close();
  return Math.round((mib / ((performance.now() - t0) / 1000)) * 10) / 10;
}

async function main(): Promise<void> {
  const mapper = new DiskMapper({ disk: '/dev/vda', workDir: '/run/disk', name: 'sextant-state' });
  if (mode === 'first') {
    const [prepared, formatMs] = await timed(() => mapper.prepare());
    if (prepared.kind !== 'fresh') throw new Error(`expected a fresh disk, got ${prepared.kind}`);
    const marker = `SEXTANT-MARKER-${randomBytes(8).toString('hex')}`;
    const mibps = await writeThroughput(prepared.path, 64, Buffer.from(marker));
    sh('mke2fs', ['-q', '-t', 'ext4', '-F', prepared.path]);
    sh('mount', [prepared.path, '/mnt']);
    await writeFile('/mnt/marker', `${marker}\n`.repeat(1000));
    sh('umount', ['/mnt']);
    await mapper.commit(deriveDiskKey(master, prepared.uuid));
    await mapper.close();
    report('first', { uuid: prepared.uuid, formatWipeMs: formatMs, marker, writeMiBps: mibps });

    // the same 64 MiB on a disk without integrity (baseline, same run)
    const plain = new DiskMapper({
      disk: '/dev/vdb',
      workDir: '/run/disk',
      name: 'baseline',
      layout: {
        ...STATE_DISK_LAYOUT,
        format: { ...STATE_DISK_LAYOUT.format, integrity: null, volumeKeyBytes: 64 },
        wipe: false,
      },
    });
    const [base, baseMs] = await timed(() => plain.prepare());
    if (base.kind !== 'fresh') throw new Error('baseline disk not fresh');
    const baseMibps = await writeThroughput(base.path, 64, Buffer.from(marker));
    await plain.close();
    report('baseline', { formatMs: baseMs, writeMiBps: baseMibps });
  } else if (mode === 'reopen') {
    const [prepared, checkMs] = await timed(() => mapper.prepare());
    if (prepared.kind !== 'initialized')
      throw new Error(`expected an initialized disk, got ${prepared.kind}`);
    let wrong = 'opened';
    try {
      await mapper.openWithKey(
        deriveDiskKey({ key: Buffer.alloc(32, 0x33), salt: master.salt }, prepared.uuid),
      );
    } catch (err) {
      wrong = err instanceof WrongDiskKeyError ? 'WrongDiskKeyError' : String(err);
    }
    const [path, unlockMs] = await timed(() => mapper.openWithKey(deriveDiskKey(master, prepared.uuid)));
    sh('mount', [path, '/mnt']);
    const text = await readFile('/mnt/marker', 'utf8');
    sh('umount', ['/mnt']);
    await mapper.close();
    report('reopen', {
      uuid: prepared.uuid,
      checkMs,
      unlockMs,
      wrongKey: wrong,
      marker: text.split('\n')[0],
    });
  } else if (mode === 'flipped') {
    const prepared = await mapper.prepare();
    if (prepared.kind !== 'initialized')
      throw new Error(`expected an initialized disk, got ${prepared.kind}`);
    const path = await mapper.openWithKey(deriveDiskKey(master, prepared.uuid));
    // 4K reads over the whole mapping: the page cache of a fresh boot is empty, a bad block fails its own read
    const handle = await open(path, 'r');
    const block = Buffer.alloc(4096);
    let eioBlocks = 0;
    for (let off = 0; ; off += 4096) {
      try {
        const { bytesRead } = await handle.read(block, 0, 4096, off);
        if (bytesRead === 0) break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EIO') throw err;
        eioBlocks++;
      }
    }
    await handle.close();
    await mapper.close();
    report('flipped', { eioBlocks });
  } else if (mode === 'swapped') {
    try {
      await mapper.prepare();
      report('swapped', { refused: false });
    } catch (err) {
      report('swapped', { refused: err instanceof HeaderRefusedError, message: (err as Error).message });
    }
  }
}

main().catch((err) => {
  report('error', { message: (err as Error).stack ?? String(err) });
  process.exitCode = 1;
});
