/** The ports a node listens on unless its config says otherwise; the CLI, the provider and the agent share them. */
export const DEFAULT_PORTS = {
  /** The agent's attestation and init server (`sextant init`, `sextant verify`). */
  init: 9000,
  /** The JoinService on every control plane. */
  joinService: 30090,
  /** kube-apiserver, kubeadm's default. */
  apiServer: 6443,
} as const;
