// `sextant config generate qemu`: the defaults of a local QEMU cluster, overridable piecewise.
import type { Measurements } from '../../attestation/measurements.js';
import { defaultQemuConfig, type SextantConfig } from './schema.js';
import { validateConfig } from './validate.js';

export interface GenerateQemuOptions {
  name?: string;
  /** The image's expected measurements (from its measurements file); empty until given. */
  measurements?: Measurements;
  controlPlanes?: number;
  workers?: number;
  image?: string;
  kubernetesVersion?: string;
  components?: SextantConfig['kubernetes']['components'];
}

/** A complete, validated config: the defaults with the given options applied. */
export function generateQemuConfig(options: GenerateQemuOptions = {}): SextantConfig {
  const config = defaultQemuConfig();
  if (options.name !== undefined) config.name = options.name;
  if (options.measurements !== undefined)
    config.attestation.measurements = structuredClone(options.measurements);
  if (options.controlPlanes !== undefined) config.nodes.controlPlanes = options.controlPlanes;
  if (options.workers !== undefined) config.nodes.workers = options.workers;
  if (options.image !== undefined) config.provider.qemu.image = options.image;
  if (options.kubernetesVersion !== undefined) config.kubernetes.version = options.kubernetesVersion;
  if (options.components !== undefined) config.kubernetes.components = structuredClone(options.components);
  return validateConfig(config, 'generated config');
}
