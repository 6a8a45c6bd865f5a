// The verifier every command that talks to a node uses: the config's measurements and EK CAs, nothing else.
import { createPeerVerifier, type PeerVerifier } from '../../attestation/atls/index.js';
import { createTrust } from '../../attestation/ek-chain.js';
import type { Measurements } from '../../attestation/measurements.js';
import { loadConfiguredMeasurements, loadEkCaCertificates } from '../config/resolve.js';
import type { SextantConfig } from '../config/schema.js';

export interface ConfiguredVerifier {
  verifier: PeerVerifier;
  measurements: Measurements;
}

export async function configuredVerifier(
  workspace: string,
  config: SextantConfig,
): Promise<ConfiguredVerifier> {
  const measurements = await loadConfiguredMeasurements(workspace, config);
  const ekCaCertificates = await loadEkCaCertificates(workspace, config);
  const verifier = createPeerVerifier({
    trust: createTrust({ ekCaCertificates }),
    measurements,
    variant: config.attestation.variant,
  });
  return { verifier, measurements };
}
