import { execa } from 'execa';

/** What the agent does to kubelet itself: start it on a rejoin (kubeadm init/join start it otherwise). */
export interface Kubelet {
  start(): Promise<void>;
}

export interface KubeletOptions {
  /** The command that starts kubelet (systemctl start kubelet on a node); empty means nothing to start. */
  command: readonly string[];
  /** Default one minute: systemctl returns once the unit started, not once kubelet is healthy. */
  timeoutMs?: number;
}

export class KubeletStartError extends Error {
  constructor(command: readonly string[], reason: string) {
    super(`starting kubelet (${command.join(' ')}): ${reason}`);
    this.name = 'KubeletStartError';
  }
}

export function createKubelet(options: KubeletOptions): Kubelet {
  const [cmd, ...args] = options.command;
  return {
    async start() {
      if (!cmd) return;
      const result = await execa(cmd, args, {
        timeout: options.timeoutMs ?? 60_000,
        stdin: 'ignore',
        reject: false,
      });
      if (result.timedOut) throw new KubeletStartError(options.command, 'timed out');
      if (result.failed) {
        const why =
          result.exitCode === undefined
            ? (result.shortMessage ?? 'did not run')
            : `exit ${result.exitCode}: ${
                String(result.stderr ?? '')
                  .trim()
                  .split('\n')
                  .at(-1) ?? ''
              }`;
        throw new KubeletStartError(options.command, why);
      }
    },
  };
}
