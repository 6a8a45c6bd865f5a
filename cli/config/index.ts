// sextant-conf.yaml: schema, defaults, validation, reading and writing.
export { configPath, formatConfig, loadConfig, parseConfig, saveConfig } from './file.js';
export { type GenerateQemuOptions, generateQemuConfig } from './generate.js';
export {
  cidrsOverlap,
  formatEndpoint,
  type HostPort,
  isDnsLabel,
  isDnsName,
  parseCidr,
  parseEndpoint,
  parseIp,
} from './net.js';
export {
  loadConfiguredMeasurements,
  loadEkCaCertificates,
  packageRoot,
  resolveImageDir,
  resolveWorkspacePath,
} from './resolve.js';
export {
  type AttestationConfig,
  type AttestationVariant,
  CONFIG_VERSION,
  type ComponentConfig,
  DEFAULT_INIT_PORT,
  DEFAULT_JOIN_SERVICE_PORT,
  DEFAULT_KUBERNETES_VERSION,
  defaultQemuConfig,
  type Firmware,
  type KubernetesConfig,
  QEMU_EK_CA_CERTIFICATES,
  type QemuProviderConfig,
  type SextantConfig,
} from './schema.js';
export { CONFIG_FILE, ConfigError, describeValue, validateConfig } from './validate.js';
