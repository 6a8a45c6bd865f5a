// Reading and writing sextant-conf.yaml. The file is validated on every read: nothing in the CLI ever sees an
// unchecked config.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Document, isMap, isScalar, parseDocument, type YAMLMap } from 'yaml';
import { writeFileAtomic } from '../../common/atomic-file.js';
import type { SextantConfig } from './schema.js';
import { CONFIG_FILE, ConfigError, validateConfig } from './validate.js';

export function configPath(dir: string): string {
  return join(dir, CONFIG_FILE);
}

/** Parses and validates YAML text. */
export function parseConfig(text: string, file: string = CONFIG_FILE): SextantConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const problem = doc.errors[0];
  if (problem) {
    // prettyErrors: the message carries a code frame (the line and a caret); it stays, it is where to look
    throw new ConfigError(file, '', `not valid YAML: ${problem.message.trimEnd()}`);
  }
  if (doc.contents === null) throw new ConfigError(file, '', 'the file is empty');
  let value: unknown;
  try {
    // aliases are no use in a config and a way to blow up memory
    value = doc.toJS({ maxAliasCount: 0 });
  } catch (err) {
    throw new ConfigError(file, '', `not usable YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return validateConfig(value, file);
}

/** Reads and validates `<dir>/sextant-conf.yaml`. */
export async function loadConfig(dir: string): Promise<SextantConfig> {
  let text: string;
  try {
    text = await readFile(configPath(dir), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new ConfigError(
        CONFIG_FILE,
        '',
        `not found in ${dir} (run "sextant config generate qemu" first)`,
      );
    }
    throw new ConfigError(CONFIG_FILE, '', `cannot read (${code ?? (err as Error).message})`);
  }
  return parseConfig(text);
}

const COMMENTS: Record<string, string> = {
  name: ' Cluster name: a DNS label; node names are <name>-control-plane-N and <name>-worker-N.',
  provider:
    ' QEMU provider. image: an image build directory (scripts/image-build.sh prints it) or "auto"\n' +
    ' ($SEXTANT_IMAGE_DIR, else image/build/current). firmware: ovmf (measured boot) or seabios.\n' +
    ' subnet: the VMs\' network, "auto" derives one from the workspace path.',
  nodes: ' Node counts: at least one control plane.',
  kubernetes:
    ' Kubernetes: components are fetched by the nodes by URL and refused unless their SHA-256 matches.',
  attestation:
    ' Attestation: nodes are trusted only if their PCRs match these measurements (from the image build;\n' +
    ' "sextant config generate qemu --measurements FILE" fills them in). Instead of inline measurements,\n' +
    ' measurementsFile (+ measurementsSignature and measurementsPublicKey) may name a signed file.\n' +
    " ekCaCertificates: the CA the TPMs' EK certificates chain to (the QEMU provider's swtpm local CA).",
  kms:
    ' Where the master secret lives: "file" (sextant-mastersecret.json), a transit key\n' +
    ' (transit+https://HOST:PORT/MOUNT/KEY; token from BAO_TOKEN, VAULT_TOKEN or SEXTANT_KMS_TOKEN_FILE) or a\n' +
    ' PKCS#11 key (pkcs11:token=T;object=O?module-path=LIB; PIN from SEXTANT_PKCS11_PIN(_FILE) or pin-source).',
  initPort: " Port of the agent's init service, and of the JoinService (a NodePort).",
};

/** Renders a config as commented YAML; measurements keys are PCR numbers, hex values stay quoted strings. */
export function formatConfig(config: SextantConfig): string {
  const plain: Record<string, unknown> = { ...structuredClone(config) };
  const attestation = plain.attestation as Record<string, unknown>;
  if (config.attestation.measurements) {
    const pcrs = new Map<number, unknown>();
    for (const pcr of Object.keys(config.attestation.measurements)
      .map(Number)
      .sort((a, b) => a - b)) {
      pcrs.set(pcr, config.attestation.measurements[pcr]);
    }
    attestation.measurements = pcrs;
  }
  const doc = new Document(plain);
  doc.commentBefore = ' Sextant cluster configuration (validated on every read; unknown keys are errors).';
  const root = doc.contents as YAMLMap;
  if (isMap(root)) {
    for (const pair of root.items) {
      if (isScalar(pair.key) && typeof pair.key.value === 'string' && COMMENTS[pair.key.value]) {
        pair.key.commentBefore = COMMENTS[pair.key.value];
      }
    }
  }
  return doc.toString({ lineWidth: 0 });
}

/** Validates, then writes `<dir>/sextant-conf.yaml` atomically. */
export async function saveConfig(dir: string, config: SextantConfig): Promise<void> {
  const text = formatConfig(config);
  // what is written must be what a later read accepts
  parseConfig(text);
  await writeFileAtomic(configPath(dir), text, { mode: 0o644 });
}
