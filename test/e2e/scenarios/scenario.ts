// One check against the shared mini cluster. Add a scenario: a file here exporting a Scenario, listed in index.ts.
import type { MiniCluster } from '../mini-cluster.js';

export interface Scenario {
  name: string;
  /** Default 20 min. */
  timeoutMs?: number;
  run(cluster: MiniCluster): Promise<void>;
}
