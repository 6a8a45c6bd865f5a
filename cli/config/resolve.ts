// Turns the config's references (measurements file, CA files, image "auto") into what the commands use.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  loadMeasurementsFile,
  type MeasurementsDocument,
  releaseKeyFingerprint,
} from '../../attestation/measurements.js';
import { secretsEqual } from '../../common/secrets.js';
import type { SextantConfig } from './schema.js';
import { CONFIG_FILE, ConfigError } from './validate.js';

/** Config paths are relative to the workspace unless absolute. */
export function resolveWorkspacePath(workspaceDir: string, path: string): string {
  return resolve(workspaceDir, path);
}

export interface MeasurementsLoadOptions {
  /** `--insecure-measurements`: read a measurements file no configured key signs (said through onUnsigned). */
  allowUnsigned?: boolean;
  onUnsigned?: (line: string) => void;
}

/**
 * The measurements nodes are checked against, from `measurementsFile`, whose detached signature must verify against
 * the pinned `measurementsPublicKey` before a byte of it is used. The key must have the pinned fingerprint and the
 * document a serial no lower than the pinned one: a key or an older signed document swapped into the workspace is
 * refused. An unsigned file, and measurements written inline in the config (which nothing signs), are refused
 * unless explicitly allowed. An empty set is refused: it would trust any node.
 */
export async function loadConfiguredMeasurements(
  workspaceDir: string,
  config: SextantConfig,
  options: MeasurementsLoadOptions = {},
): Promise<MeasurementsDocument> {
  const a = config.attestation;
  let doc: MeasurementsDocument;
  if (a.measurementsFile !== undefined) {
    const file = resolveWorkspacePath(workspaceDir, a.measurementsFile);
    let publicKey: Buffer | undefined;
    if (a.measurementsPublicKey !== undefined) {
      publicKey = await readFile(resolveWorkspacePath(workspaceDir, a.measurementsPublicKey)).catch(
        (err: NodeJS.ErrnoException) => {
          throw new ConfigError(
            CONFIG_FILE,
            'attestation.measurementsPublicKey',
            `cannot read ${a.measurementsPublicKey} (${err.code ?? 'error'})`,
          );
        },
      );
      const fingerprint = releaseKeyFingerprint(publicKey);
      const pinned = a.measurementsKeyFingerprint ?? '';
      if (!secretsEqual(Buffer.from(fingerprint), Buffer.from(pinned))) {
        throw new ConfigError(
          CONFIG_FILE,
          'attestation.measurementsKeyFingerprint',
          `${a.measurementsPublicKey} is the key ${fingerprint}, not the pinned release key ${pinned}: refusing measurements signed by another key`,
        );
      }
    } else if (!options.allowUnsigned) {
      throw new ConfigError(
        CONFIG_FILE,
        'attestation.measurementsPublicKey',
        `missing: ${a.measurementsFile} would be used without a signature check (pin the image's release key with "sextant config generate qemu --measurements FILE", or pass --insecure-measurements)`,
      );
    } else {
      options.onUnsigned?.(
        `INSECURE: ${a.measurementsFile} is used without a signature check (--insecure-measurements)`,
      );
    }
    doc = await loadMeasurementsFile(file, {
      ...(publicKey ? { publicKey } : { allowUnsigned: true }),
      ...(a.measurementsSignature !== undefined
        ? { signaturePath: resolveWorkspacePath(workspaceDir, a.measurementsSignature) }
        : {}),
    }).catch((err: Error & { code?: string }) => {
      if (err.code === 'ENOENT')
        throw new ConfigError(
          CONFIG_FILE,
          'attestation.measurementsFile',
          `cannot read ${a.measurementsFile} (ENOENT)`,
        );
      throw err;
    });
    const pinnedSerial = a.measurementsSerial;
    if (publicKey && pinnedSerial !== undefined && (doc.serial ?? 0) < pinnedSerial) {
      throw new ConfigError(
        CONFIG_FILE,
        'attestation.measurementsSerial',
        `${a.measurementsFile} is serial ${doc.serial} (version ${doc.version}), older than the pinned serial ${pinnedSerial}: refusing a downgrade to older signed measurements`,
      );
    }
  } else {
    doc = { measurements: a.measurements ?? {} };
    // Inline measurements carry no signature: as unsigned as an unsigned file, so refused the same way.
    if (Object.keys(doc.measurements).length > 0) {
      if (!options.allowUnsigned) {
        throw new ConfigError(
          CONFIG_FILE,
          'attestation.measurements',
          `written inline, so unsigned: measurements must be signed by the image's release key (pin them with "sextant config generate qemu --measurements FILE", or pass --insecure-measurements)`,
        );
      }
      options.onUnsigned?.(
        `INSECURE: the measurements written inline in ${CONFIG_FILE} are unsigned (--insecure-measurements)`,
      );
    }
  }
  if (Object.keys(doc.measurements).length === 0) {
    throw new ConfigError(
      CONFIG_FILE,
      'attestation.measurements',
      'empty; refusing to trust any node (run "sextant config generate qemu --measurements FILE" with the image\'s measurements file)',
    );
  }
  return doc;
}

/** PEM text of every configured EK CA certificate file. */
export async function loadEkCaCertificates(workspaceDir: string, config: SextantConfig): Promise<string[]> {
  return Promise.all(
    config.attestation.ekCaCertificates.map((p, i) =>
      readFile(resolveWorkspacePath(workspaceDir, p), 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new ConfigError(
          CONFIG_FILE,
          `attestation.ekCaCertificates[${i}]`,
          `cannot read ${p} (${err.code ?? 'error'}${err.code === 'ENOENT' ? '; the QEMU provider creates its CA on "sextant create"' : ''})`,
        );
      }),
    ),
  );
}

/** The repository (or installed package) root: the nearest directory above this module with package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/** The image directory: the configured path, or for "auto" $SEXTANT_IMAGE_DIR, else image/build/current. */
export function resolveImageDir(
  workspaceDir: string,
  config: SextantConfig,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const image = config.provider.qemu.image;
  if (image !== 'auto') return resolveWorkspacePath(workspaceDir, image);
  if (env.SEXTANT_IMAGE_DIR) return resolve(env.SEXTANT_IMAGE_DIR);
  return join(packageRoot(), 'image', 'build', 'current');
}
