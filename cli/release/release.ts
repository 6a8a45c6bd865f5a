// A release directory (scripts/release-build.sh writes it): the node image, its signed measurements and the
// Kubernetes components, all named with their SHA-256 in release.json, which the release key signs.
import { createHash, createPublicKey, verify } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as v from 'valibot';
import type { Component } from '../../common/contracts/component.js';
import { parseWith, strictObject } from '../../common/schema.js';

export const RELEASE_MANIFEST = 'release.json';
/** Where a release's parts sit inside its directory. */
export const RELEASE_IMAGE_DIR = 'image';
export const RELEASE_COMPONENTS_DIR = 'components';
export const RELEASE_MEASUREMENTS = 'measurements.json';
export const RELEASE_KEY = 'measurements.pub.pem';
/** The port the QEMU provider serves a release's components on, at the host's address on the VMs' subnet. */
export const RELEASE_SERVER_PORT = 30081;

const HEX64 = /^[0-9a-f]{64}$/;
const componentName = v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'expected a file name'));

const manifestSchema = v.object({
  release: v.literal(1, 'expected 1'),
  kubernetesVersion: v.pipe(v.string(), v.regex(/^v[0-9]+\.[0-9]+\.[0-9]+$/, 'expected vX.Y.Z')),
  image: v.string(),
  measurementsSha256: v.pipe(v.string(), v.regex(HEX64, 'expected 64 hex digits')),
  nodeShape: v.object({ vcpus: v.number(), memoryMiB: v.number() }),
  components: v.pipe(
    v.array(
      strictObject({
        name: componentName,
        sha256: v.pipe(v.string(), v.regex(HEX64, 'expected 64 hex digits')),
        size: v.number(),
        installPath: v.pipe(v.string(), v.startsWith('/', 'expected an absolute path')),
      }),
    ),
    v.minLength(1, 'expected at least one component'),
  ),
});

export type ReleaseManifest = v.InferOutput<typeof manifestSchema>;

export interface Release {
  dir: string;
  manifest: ReleaseManifest;
  imageDir: string;
  measurementsFile: string;
  publicKeyFile: string;
}

export class ReleaseError extends Error {
  override name = 'ReleaseError';
}

/**
 * Reads `<dir>/release.json`, checks its signature against the release key in the directory (the key config
 * generate pins) and that the measurements file is the one it names. Component bytes are checked by SHA-256 on
 * the node; this only proves the list is the release's.
 */
export async function loadRelease(dir: string): Promise<Release> {
  const abs = resolve(dir);
  const read = (name: string) =>
    readFile(join(abs, name)).catch((err: NodeJS.ErrnoException) => {
      throw new ReleaseError(
        `${join(abs, name)}: cannot read (${err.code ?? 'error'}); is ${abs} a release directory (sextant release build)?`,
      );
    });
  const [bytes, signature, key, measurements] = await Promise.all([
    read(RELEASE_MANIFEST),
    read(`${RELEASE_MANIFEST}.sig`),
    read(RELEASE_KEY),
    read(RELEASE_MEASUREMENTS),
  ]);
  let ok = false;
  try {
    ok = verify(null, bytes, createPublicKey(key), signature);
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new ReleaseError(
      `${join(abs, RELEASE_MANIFEST)}: signature does not verify against ${RELEASE_KEY} (altered or signed by another key)`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ReleaseError(`${join(abs, RELEASE_MANIFEST)}: not JSON`);
  }
  let manifest: ReleaseManifest;
  try {
    manifest = parseWith(manifestSchema, json);
  } catch (err) {
    throw new ReleaseError(`${join(abs, RELEASE_MANIFEST)}: ${(err as Error).message}`);
  }
  const actual = createHash('sha256').update(measurements).digest('hex');
  if (actual !== manifest.measurementsSha256) {
    throw new ReleaseError(
      `${join(abs, RELEASE_MEASUREMENTS)}: SHA-256 ${actual} is not the release's (${manifest.measurementsSha256})`,
    );
  }
  return {
    dir: abs,
    manifest,
    imageDir: join(abs, RELEASE_IMAGE_DIR),
    measurementsFile: join(abs, RELEASE_MEASUREMENTS),
    publicKeyFile: join(abs, RELEASE_KEY),
  };
}

/** The release's components as the nodes fetch them: from the provider's server at `host`. */
export function releaseComponents(manifest: ReleaseManifest, host: string): Component[] {
  return manifest.components.map((c) => ({
    url: `http://${host}:${RELEASE_SERVER_PORT}/${c.name}`,
    sha256: c.sha256,
    installPath: c.installPath,
    extract: false,
  }));
}
