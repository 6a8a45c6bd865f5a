// Building a release directory: scripts/release-build.sh, which runs each cached build (Kubernetes, its images, the
// node image, its signed measurements) and lays the release out. The CLI only runs it and relays its progress.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../config/resolve.js';

export interface BuildReleaseOptions {
  /** Where to write the release; default: a directory under the cache named by the inputs' hash. */
  dir?: string;
  /** Each progress line of the build (its stderr). */
  onLine: (line: string) => void;
  env?: NodeJS.ProcessEnv;
}

/** Runs the release build; resolves with the release directory it printed. */
export function buildRelease(options: BuildReleaseOptions): Promise<string> {
  const script = join(packageRoot(), 'scripts', 'release-build.sh');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, ...(options.dir !== undefined ? [options.dir] : [])], {
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let partial = '';
    const tail: string[] = [];
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      const lines = (partial + c.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        tail.push(l);
        if (tail.length > 20) tail.shift();
        options.onLine(l);
      }
    });
    child.on('error', (err) => reject(new Error(`release build: cannot run bash ${script}: ${err.message}`)));
    child.on('exit', (code, signal) => {
      const dir = stdout.trim().split('\n').pop();
      if (code === 0 && dir) resolve(dir);
      else
        reject(
          new Error(
            `release build failed (${signal ?? `exit ${code}`}): ${script}; last lines:\n${tail.join('\n')}`,
          ),
        );
    });
  });
}
