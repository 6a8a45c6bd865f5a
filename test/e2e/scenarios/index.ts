// The scenarios run against the one shared mini cluster, in this order (each leaves the cluster as it found it).
import { attestation } from './attestation.js';
import { kmsMasterSecret } from './kms.js';
import { nodesReady } from './nodes-ready.js';
import { podNetwork } from './pod-network.js';
import type { Scenario } from './scenario.js';
import { tamperedImage } from './tampered-image.js';

export type { Scenario } from './scenario.js';

export const SCENARIOS: readonly Scenario[] = [
  nodesReady,
  podNetwork,
  attestation,
  kmsMasterSecret,
  tamperedImage,
];
