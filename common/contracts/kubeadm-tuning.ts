import * as v from 'valibot';

/**
 * How a platform's nodes tune kubeadm (agent/kubeadm/tuning.ts holds each profile): the provider that makes the nodes
 * knows what they run on and names it in their metadata. 'default' is kubeadm's own waits and flags.
 */
export const KUBEADM_TUNINGS = ['default', 'qemu-tcg'] as const;

export type KubeadmTuning = (typeof KUBEADM_TUNINGS)[number];

export const kubeadmTuningSchema = v.picklist(
  KUBEADM_TUNINGS,
  `expected one of ${KUBEADM_TUNINGS.join(', ')}`,
);
