// The verifier every command that talks to a node uses: the config's measurements and EK CAs, nothing else.
import { createPeerVerifier, type PeerVerifier } from '../../attestation/atls/index.js';
import { createTrust } from '../../attestation/ek-chain.js';
import { enforceMeasurementPolicy } from '../../attestation/measurement-policy.js';
import type { Measurements, MeasurementsDocument } from '../../attestation/measurements.js';
import { loadConfiguredMeasurements, loadEkCaCertificates } from '../config/resolve.js';
import type { SextantConfig } from '../config/schema.js';

export interface ConfiguredVerifier {
  verifier: PeerVerifier;
  measurements: Measurements;
  /** The loaded document (with the release's version and serial when signed): what init hands the JoinService. */
  document: MeasurementsDocument;
}

export interface VerifierPolicyOptions {
  /**
   * The operator's explicit `--insecure-measurements`: accept an unsigned measurements file and a set weaker than
   * the minimum enforced PCRs. Every weakness is written through `warn`, prefixed INSECURE.
   */
  insecure?: boolean;
  warn?: (line: string) => void;
}

export async function configuredVerifier(
  workspace: string,
  config: SextantConfig,
  options: VerifierPolicyOptions = {},
): Promise<ConfiguredVerifier> {
  const warn = options.warn ?? (() => {});
  const document = await loadConfiguredMeasurements(workspace, config, {
    allowUnsigned: options.insecure === true,
    onUnsigned: warn,
  });
  const measurements = enforceMeasurementPolicy(document.measurements, {
    insecure: options.insecure === true,
    onInsecure: warn,
    where: 'attestation measurements',
  });
  const ekCaCertificates = await loadEkCaCertificates(workspace, config);
  const verifier = createPeerVerifier({
    trust: createTrust({ ekCaCertificates }),
    measurements,
    variant: config.attestation.variant,
  });
  return { verifier, measurements, document };
}
