// A small tmpfs (needs root) that a test can fill to the last page: the full disk a node's state partition
// reaches, with the kernel's own ENOSPC and short writes rather than a mocked fs.
import { execFile } from 'node:child_process';
import { mkdtemp, open, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface SmallDisk {
  dir: string;
  /** Fills every free page with a filler file; what is left is the slack in the last page of existing files. */
  fill(): Promise<void>;
  /** Removes the filler: the disk has room again. */
  free(): Promise<void>;
  unmount(): Promise<void>;
}

export async function mountSmallDisk(sizeKiB = 256): Promise<SmallDisk> {
  const dir = await mkdtemp(join(tmpdir(), 'sextant-smalldisk-'));
  await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k,mode=0700`, 'tmpfs', dir]);
  const filler = join(dir, '.filler');
  return {
    dir,
    async fill() {
      const handle = await open(filler, 'a');
      try {
        for (const chunk of [65536, 4096, 512, 1]) {
          const buf = Buffer.alloc(chunk, 0x2e);
          for (;;) {
            try {
              const { bytesWritten } = await handle.write(buf);
              if (bytesWritten < chunk) break;
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
              throw err;
            }
          }
        }
      } finally {
        await handle.close();
      }
    },
    free: () => rm(filler, { force: true }),
    async unmount() {
      await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
      await rmdir(dir).catch(() => {});
    },
  };
}
