// kubeadm must not outlive the agent that started it: an agent killed mid-init (SIGKILL, OOM) would otherwise leave
// a kubeadm writing /etc/kubernetes while the restarted agent resets or re-inits the node. The kernel's
// parent-death signal (prctl PR_SET_PDEATHSIG, set by util-linux setpriv in the child before exec) kills it with
// the agent however the agent ends; under systemd the unit's cgroup does the same, this covers every other runner.
import { existsSync } from 'node:fs';

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/** The command line that runs `binary args` so that it dies with this process (unchanged without setpriv). */
export function diesWithAgent(binary: string, args: string[]): { file: string; args: string[] } {
  // A missing binary is reported as such (ENOENT), not as setpriv's exit 127.
  if (!SETPRIV || !existsSync(binary)) return { file: binary, args };
  return { file: SETPRIV, args: ['--pdeathsig', 'KILL', '--', binary, ...args] };
}
