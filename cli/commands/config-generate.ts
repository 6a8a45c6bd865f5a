// sextant config generate qemu [--measurements FILE [--measurements-key PUB]] [--force]
import { access, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { enforceMeasurementPolicy } from '../../attestation/measurement-policy.js';
import {
  releaseKeyFingerprint,
  type SignedMeasurements,
  verifyMeasurementsFile,
} from '../../attestation/measurements.js';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { configPath, loadConfig, saveConfig } from '../config/file.js';
import { generateQemuConfig } from '../config/generate.js';
import { CONFIG_FILE, validateConfig } from '../config/validate.js';
import { freeNetworkFor } from '../provider/qemu/network.js';
import { loadRelease, type Release, releaseComponents } from '../release/release.js';
import { defineCommand, kmsOption } from './command.js';
import { type CommandContext, UsageError } from './context.js';

export interface ConfigGenerateOptions {
  provider: 'qemu';
  /**
   * An image measurements file (JSON {"measurements": {...}}) with its detached signature beside it (FILE.sig),
   * signed by the image build's release key.
   */
  measurementsFile?: string;
  /** The release public key (PEM) to pin; default: measurements.pub.pem beside the measurements file. */
  measurementsKey?: string;
  /** A release directory (sextant release build): measurements, image, Kubernetes version and components from it. */
  release?: string;
  /** Where the master secret lives (cli/kms/uri.ts); default "file". */
  kms?: string;
  force: boolean;
}

const NAME = 'config generate';
/** What the image build writes beside measurements.json: its release public key. */
export const RELEASE_KEY_NAME = 'measurements.pub.pem';
/** The workspace copies config generate pins: the signed file, its signature, the release key. */
const WORKSPACE_MEASUREMENTS = 'sextant-measurements.json';
const WORKSPACE_RELEASE_KEY = 'sextant-measurements-key.pem';

/**
 * Refuses to replace the workspace's pin with an older document of the same release key: `--force` starts a
 * config over, it does not roll the measurements back. A workspace without a readable pin has nothing to keep.
 */
async function refuseDowngrade(ctx: CommandContext, doc: SignedMeasurements, fingerprint: string) {
  const existing = await loadConfig(ctx.workspace).catch(() => undefined);
  const a = existing?.attestation;
  if (a?.measurementsSerial === undefined || a.measurementsKeyFingerprint !== fingerprint) return;
  if (doc.serial < a.measurementsSerial) {
    throw new UsageError(
      `--measurements: serial ${doc.serial} (version ${doc.version}) is older than the serial ${a.measurementsSerial} ${CONFIG_FILE} pins (attestation.measurementsSerial) for this release key: refusing a downgrade`,
      NAME,
    );
  }
}
const PROVIDERS = ['qemu'] as const;

export async function configGenerate(ctx: CommandContext, options: ConfigGenerateOptions): Promise<number> {
  const target = configPath(ctx.workspace);
  if (!options.force) {
    const present = await access(target).then(
      () => true,
      () => false,
    );
    if (present) {
      ctx.stderr.write(`sextant ${NAME}: ${target} already exists; use --force to overwrite it\n`);
      return 1;
    }
  }
  let signed: SignedMeasurements | undefined;
  let pinned: { file: Buffer; signature: Buffer; publicKey: Buffer; fingerprint: string } | undefined;
  let release: Release | undefined;
  if (options.release !== undefined) {
    release = await loadRelease(resolve(ctx.workspace, options.release)).catch((err: Error) => {
      throw new UsageError(`--release: ${err.message}`, NAME);
    });
  }
  const measurementsFile = release?.measurementsFile ?? options.measurementsFile;
  if (measurementsFile !== undefined) {
    const file = resolve(ctx.workspace, measurementsFile);
    const keyFile = release
      ? release.publicKeyFile
      : resolve(ctx.workspace, options.measurementsKey ?? join(dirname(file), RELEASE_KEY_NAME));
    const read = (path: string, flag: string) =>
      readFile(path).catch((err: NodeJS.ErrnoException) => {
        throw new UsageError(`${flag}: cannot read ${path} (${err.code ?? 'error'})`, NAME);
      });
    const publicKey = await read(keyFile, '--measurements-key');
    pinned = {
      file: await read(file, '--measurements'),
      signature: await read(`${file}.sig`, '--measurements (its detached signature)'),
      publicKey,
      fingerprint: releaseKeyFingerprint(publicKey),
    };
    // Verified here and again on every use: the workspace copy is what later commands check.
    signed = verifyMeasurementsFile(pinned.file, pinned.signature, pinned.publicKey, file);
    if (Object.keys(signed.measurements).length === 0) {
      throw new UsageError(`--measurements: ${file} holds no measurements`, NAME);
    }
    enforceMeasurementPolicy(signed.measurements, { where: file });
    if (options.force) await refuseDowngrade(ctx, signed, pinned.fingerprint);
    ctx.stderr.write(
      `pinned measurements of image version ${signed.version}, serial ${signed.serial}${
        signed.expires ? `, expiring ${signed.expires}` : ''
      }\n`,
    );
    ctx.stderr.write(`pinned measurements release key ${pinned.fingerprint} (${keyFile})\n`);
  }
  let config = generateQemuConfig();
  if (release) {
    // the nodes fetch the components from the provider's server at the host's address on their subnet, so the
    // subnet is fixed here (a free one) and the URLs name it
    const net = await freeNetworkFor(ctx.workspace);
    config.provider.qemu.image = release.imageDir;
    config.provider.qemu.release = release.dir;
    config.provider.qemu.subnet = net.subnet;
    config.kubernetes.version = release.manifest.kubernetesVersion;
    config.kubernetes.components = releaseComponents(release.manifest, net.hostAddress);
    ctx.stderr.write(
      `release ${release.dir}: Kubernetes ${release.manifest.kubernetesVersion}, image ${release.manifest.image}, ` +
        `${release.manifest.components.length} components served to the nodes from ${net.hostAddress}\n`,
    );
  }
  if (options.kms !== undefined) config = { ...config, kms: options.kms };
  if (pinned && signed) {
    await writeFileAtomic(join(ctx.workspace, WORKSPACE_MEASUREMENTS), pinned.file, { mode: 0o644 });
    await writeFileAtomic(join(ctx.workspace, `${WORKSPACE_MEASUREMENTS}.sig`), pinned.signature, {
      mode: 0o644,
    });
    await writeFileAtomic(join(ctx.workspace, WORKSPACE_RELEASE_KEY), pinned.publicKey, { mode: 0o644 });
    const { measurements: _inline, ...attestation } = config.attestation;
    config = validateConfig(
      {
        ...config,
        attestation: {
          ...attestation,
          measurementsFile: WORKSPACE_MEASUREMENTS,
          measurementsSignature: `${WORKSPACE_MEASUREMENTS}.sig`,
          measurementsPublicKey: WORKSPACE_RELEASE_KEY,
          measurementsKeyFingerprint: pinned.fingerprint,
          measurementsSerial: signed.serial,
        },
      },
      'generated config',
    );
  }
  await saveConfig(ctx.workspace, config);
  ctx.stdout.write(`${target}\n`);
  if (!signed) {
    ctx.stderr.write(
      `note: ${CONFIG_FILE} has no measurements yet; nodes cannot be verified until they are filled in ` +
        '(rerun with --measurements FILE, the file the image build writes)\n',
    );
  }
  return 0;
}

export const configGenerateCommand = defineCommand<ConfigGenerateOptions>({
  path: ['config', 'generate'],
  summary: 'write sextant-conf.yaml with defaults for a provider',
  usage:
    'sextant config generate qemu [--release DIR | --measurements FILE [--measurements-key PUB]] [--kms URI] [--force]',
  help: [
    'Writes sextant-conf.yaml into the workspace with strong defaults for a local QEMU cluster',
    '(1 control plane, 1 worker, OVMF measured boot, Kubernetes and network defaults).',
    '',
    '  --release DIR            a release directory (sextant release build): its signed measurements are pinned,',
    '                           its image, Kubernetes version and components (served to the nodes) configured',
    '  --measurements FILE      the image measurements file; its signature FILE.sig must verify against the',
    '                           release key, which is pinned in the workspace with the file and signature;',
    '                           the image version and serial it pins are printed, and every later command',
    '                           refuses a lower serial or another key (a --force over a newer pin is refused)',
    '  --measurements-key PUB   the release public key (default: measurements.pub.pem beside FILE)',
    '  --kms URI                where the master secret lives: file (default), transit+https://HOST:PORT/MOUNT/KEY',
    '                           or pkcs11:token=T;object=O?module-path=LIB (credentials come from the environment)',
    '  --force                  overwrite an existing sextant-conf.yaml',
  ].join('\n'),
  options: {
    release: { type: 'string' },
    measurements: { type: 'string' },
    'measurements-key': { type: 'string' },
    kms: { type: 'string' },
    force: { type: 'boolean' },
  },
  maxPositionals: 1,
  parse: ({ values, positionals }) => {
    const provider = positionals[0];
    if (provider === undefined)
      throw new UsageError(`missing provider (one of: ${PROVIDERS.join(', ')})`, NAME);
    if (!(PROVIDERS as readonly string[]).includes(provider)) {
      throw new UsageError(
        `unknown provider ${JSON.stringify(provider)} (expected one of: ${PROVIDERS.join(', ')})`,
        NAME,
      );
    }
    if (typeof values.release === 'string' && typeof values.measurements === 'string') {
      throw new UsageError(
        '--release and --measurements: give one (a release carries its measurements)',
        NAME,
      );
    }
    return {
      provider: 'qemu',
      ...(typeof values.kms === 'string' ? { kms: kmsOption(values.kms, NAME) } : {}),
      force: values.force === true,
      ...(typeof values.release === 'string' ? { release: values.release } : {}),
      ...(typeof values.measurements === 'string' ? { measurementsFile: values.measurements } : {}),
      ...(typeof values['measurements-key'] === 'string'
        ? { measurementsKey: values['measurements-key'] }
        : {}),
    };
  },
  run: (ctx, options) => configGenerate(ctx, options),
});
