// Takes a workspace lock in its own process, for the lock's fault tests.
//   hold-lock.ts <dir> exit   → locks, prints "locked", exits at once (the exit hook must remove the lock)
//   hold-lock.ts <dir> hold   → locks, prints "locked", waits to be killed (SIGKILL leaves a stale lock)
//   hold-lock.ts <dir> temp   → starts an atomic write's temp file, prints its path, exits mid-write (exit hook)
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockWorkspace } from '../../../cli/workspace/lock.js';
import { trackTempFile } from '../../../common/atomic-file.js';

const [dir, mode] = process.argv.slice(2) as [string, string];
if (mode === 'temp') {
  const { tmp } = trackTempFile(join(dir, 'sextant-admin.conf'));
  writeFileSync(tmp, 'client-key-data: secret\n', { mode: 0o600 });
  console.log(tmp);
  process.exit(130);
}
await lockWorkspace(dir, `test ${mode}`);
console.log('locked');
if (mode === 'exit') process.exit(0);
setInterval(() => {}, 1 << 30);
