// Checks a parsed sextant-conf.yaml document against the v1 schema (cli/config/schema.ts). Every error names the
// file, the key path (`nodes.workers`, `kubernetes.components[0].sha256`) and what was expected; unknown keys are
// errors so a typo never silently falls back to a default.
import { parseWith, SchemaError } from '../../common/schema.js';
import { configSchema, type SextantConfig } from './schema.js';

export const CONFIG_FILE = 'sextant-conf.yaml';

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly file: string,
    /** Dotted key path, empty for the document itself. */
    readonly keyPath: string,
    readonly detail: string,
  ) {
    super(keyPath ? `${file}: ${keyPath}: ${detail}` : `${file}: ${detail}`);
  }
}

/** Validates a parsed document; returns a fresh, normalised config (hex lowercased, defaults of optional flags). */
export function validateConfig(doc: unknown, file: string = CONFIG_FILE): SextantConfig {
  try {
    return parseWith(configSchema, doc);
  } catch (err) {
    if (err instanceof SchemaError) throw new ConfigError(file, err.keyPath, err.detail);
    throw err;
  }
}
