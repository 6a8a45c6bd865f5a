// Test harness: what an operator's CLI sends to init a node, built for test clusters.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { createPeerVerifier, type PeerVerifier } from '../../attestation/atls/index.js';
import { createTrust } from '../../attestation/ek-chain.js';
import type { Measurements } from '../../attestation/measurements.js';
import type { InitRequest } from '../../gen/proto/init.js';
import { validInitRequest } from '../agent/fakes.js';
import type { SwtpmCa } from './swtpm.js';

const REPO = resolve(import.meta.dirname, '../..');
const STANDIN = join(REPO, 'dist/test/kubeadm/kubeadm');

/** Builds the kubeadm stand-in bundle once per process (or when its sources are newer). */
export function kubeadmStandin(): { url: string; sha256: string; path: string } {
  const src = join(REPO, 'test/kubeadm/src');
  const newest = Math.max(
    ...execFileSync('find', [src, '-name', '*.ts', '-printf', '%T@\\n'])
      .toString()
      .trim()
      .split('\n')
      .map(Number),
  );
  if (!existsSync(STANDIN) || statSync(STANDIN).mtimeMs / 1000 < newest) {
    execFileSync('bash', [join(REPO, 'test/kubeadm/build.sh')], { stdio: 'inherit' });
  }
  const sha256 = createHash('sha256').update(readFileSync(STANDIN)).digest('hex');
  return { url: `file://${STANDIN}`, sha256, path: STANDIN };
}

/**
 * What a node image gives kubeadm that a test's rootfs directory lacks, so the stand-in's preflight
 * (which, like kubeadm after its chroot into --rootfs, reads them there) passes: IPv4 forwarding on, and
 * a kubelet on PATH — a shell stand-in that only answers `--version`; the kubeadm stand-in starts none.
 */
export function prepareStandinNode(rootfs: string, kubeletVersion = 'v1.31.4'): void {
  mkdirSync(join(rootfs, 'proc/sys/net/ipv4'), { recursive: true });
  writeFileSync(join(rootfs, 'proc/sys/net/ipv4/ip_forward'), '1\n');
  mkdirSync(join(rootfs, 'usr/bin'), { recursive: true });
  writeFileSync(
    join(rootfs, 'usr/bin/kubelet'),
    `#!/bin/sh\n# kubelet stand-in for the kubeadm stand-in's preflight: version only.\n[ "$1" = --version ] && { echo "Kubernetes ${kubeletVersion}"; exit 0; }\necho "kubelet stand-in: only --version" >&2\nexit 1\n`,
    { mode: 0o755 },
  );
}

/** A swtpm boots with PCRs 0–14 zero: these are the "measurements" of a node without measured boot. */
export function swtpmMeasurements(overrides: Measurements = {}): Measurements {
  const m: Measurements = {};
  for (let i = 0; i < 15; i++) m[i] = { expected: '00'.repeat(32), warnOnly: false };
  return { ...m, ...overrides };
}

export function measurementsFile(m: Measurements): Buffer {
  return Buffer.from(JSON.stringify({ measurements: m }));
}

export function testVerifier(ca: SwtpmCa, measurements: Measurements = swtpmMeasurements()): PeerVerifier {
  return createPeerVerifier({
    trust: createTrust({ ekCaCertificates: [ca.rootPem, ca.issuerPem] }),
    measurements,
    variant: 'qemu-vtpm',
  });
}

export interface TestInit {
  request: InitRequest;
  masterKey: Buffer;
  masterSalt: Buffer;
}

/** A valid InitRequest for a test node, kubeadm being the stand-in served here; override any field to make it bad. */
export function initRequest(initSecret: Buffer, overrides: Partial<InitRequest> = {}): TestInit {
  const standin = kubeadmStandin();
  const masterKey = randomBytes(32);
  const masterSalt = randomBytes(32);
  return {
    masterKey,
    masterSalt,
    request: validInitRequest({
      initSecret,
      keySource: { $case: 'masterSecret', value: { key: masterKey, salt: masterSalt } },
      kubernetesComponents: [
        { url: standin.url, sha256: standin.sha256, installPath: '/usr/local/bin/kubeadm', extract: false },
      ],
      measurements: measurementsFile(swtpmMeasurements()),
      ...overrides,
    }),
  };
}

export interface ServedComponent {
  url: string;
  sha256: string;
  tarUrl: string;
  tarSha256: string;
  close(): Promise<void>;
}

/** Serves the stand-in over HTTP (plain and as a tarball), the way a release server hands out kubeadm. */
export async function serveKubeadmStandin(): Promise<ServedComponent> {
  const standin = kubeadmStandin();
  const bin = readFileSync(standin.path);
  const tar = readFileSync(`${standin.path}.tar.gz`);
  const server = createServer((req, res) => res.end(req.url === '/kubeadm.tar.gz' ? tar : bin));
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  return {
    url: `${base}/kubeadm`,
    sha256: sha(bin),
    tarUrl: `${base}/kubeadm.tar.gz`,
    tarSha256: sha(tar),
    close: () => new Promise<void>((done) => server.close(() => done())),
  };
}

/** Stops the API-server daemon the stand-in leaves running in a node's rootfs. */
export async function stopStandinDaemons(rootfs: string): Promise<void> {
  const pidFile = join(rootfs, 'var/run/kubeadm-standin/apiserver.pid');
  try {
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
  } catch {
    // Already gone: nothing to stop.
  }
  await rm(pidFile, { force: true });
}
