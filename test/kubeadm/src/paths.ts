import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';

/**
 * Real kubeadm chroots into --rootfs, so every absolute path it reads or writes lives under it.
 * Paths written *into* files (kubeconfigs, manifests) stay as seen from inside the rootfs.
 */
export class Rootfs {
  readonly dir: string;
  constructor(dir: string | undefined) {
    this.dir = dir ? resolve(dir) : '/';
  }
  /** Host path of an in-rootfs absolute path. */
  p(inside: string): string {
    if (!isAbsolute(inside)) return resolve(inside);
    return this.dir === '/' ? inside : join(this.dir, inside);
  }
  /** --config: looked up inside the rootfs first (as the chroot would), then on the host. */
  configPath(arg: string): string {
    if (this.dir !== '/' && isAbsolute(arg)) {
      const inside = this.p(arg);
      if (existsSync(inside)) return inside;
    }
    return resolve(arg);
  }
  get kubernetesDir(): string {
    return this.p('/etc/kubernetes');
  }
  get stateDir(): string {
    return this.p('/var/lib/kubeadm-standin');
  }
  get runDir(): string {
    return this.p('/var/run/kubeadm-standin');
  }
  get pidFile(): string {
    return join(this.runDir, 'apiserver.pid');
  }
  get logFile(): string {
    return join(this.runDir, 'apiserver.log');
  }
}
