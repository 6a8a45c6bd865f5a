// Installs one component in its own process, so a test can SIGKILL it mid-download.
//   install-component.ts <url> <sha256> <rootfs>
import { installComponents } from '../../../agent/components/install.js';
import { createLogger } from '../../../agent/log/index.js';

const [url, sha256, rootfs] = process.argv.slice(2) as [string, string, string];
await installComponents([{ url, sha256, installPath: '/usr/local/bin/kubeadm', extract: false }], {
  rootfs,
  log: createLogger({ sink: 'stdout' }),
});
console.log('installed');
