// One swtpm per VM, manufactured with EK + platform certificates from a PRIVATE swtpm-localca CA that lives in
// the workspace (the system CA under /var/lib/swtpm-localca is never touched).
import { randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ekKeyHash } from '../../../common/contracts/owner.js';
import { run } from './exec.js';

export interface LocalCa {
  dir: string;
  setupConf: string;
  /** Root certificate (PEM) the EK certificates chain to, via `issuerPem`. */
  rootPem: string;
  issuerPem: string;
}

/** The CA's files in `dir`: its swtpm_localca state and the configuration swtpm_setup is pointed at. */
function caFiles(dir: string) {
  const abs = resolve(dir);
  const stateDir = join(abs, 'localca');
  return {
    dir: abs,
    stateDir,
    localcaConf: join(abs, 'swtpm-localca.conf'),
    localcaOptions: join(abs, 'swtpm-localca.options'),
    setupConf: join(abs, 'swtpm_setup.conf'),
    rootCert: join(stateDir, 'swtpm-localca-rootca-cert.pem'),
    issuerCert: join(stateDir, 'issuercert.pem'),
  };
}

/** Writes the CA configuration in `dir` (idempotent); the CA itself is made by swtpm_localca on first use. */
function writeCaConfig(dir: string): ReturnType<typeof caFiles> {
  const f = caFiles(dir);
  mkdirSync(f.stateDir, { recursive: true, mode: 0o700 });
  if (!existsSync(f.setupConf)) {
    writeFileSync(
      f.localcaConf,
      `statedir = ${f.stateDir}\nsigningkey = ${f.stateDir}/signkey.pem\nissuercert = ${f.issuerCert}\ncertserial = ${f.stateDir}/certserial\n`,
    );
    writeFileSync(
      f.localcaOptions,
      '--platform-manufacturer Sextant\n--platform-version 2.1\n--platform-model swtpm\n',
    );
    writeFileSync(
      f.setupConf,
      `create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${f.localcaConf}\ncreate_certs_tool_options = ${f.localcaOptions}\nactive_pcr_banks = sha256\n`,
    );
  }
  return f;
}

/**
 * Creates the private CA in `dir` now (or reuses the one there): swtpm_localca makes its root and intermediate on
 * first use, and issuing one throw-away EK certificate for a random modulus is the cheapest way to make it do so
 * (~0.2 s) without a TPM. One CA signs the EK certificates of many TPMs.
 */
export async function ensureLocalCa(dir: string): Promise<LocalCa> {
  const f = writeCaConfig(dir);
  if (!existsSync(f.rootCert) || !existsSync(f.issuerCert)) {
    const modulus = randomBytes(256);
    modulus[0] = (modulus[0] ?? 0) | 0x80;
    const scratch = join(f.dir, 'bootstrap');
    mkdirSync(scratch, { recursive: true });
    try {
      // biome-ignore format: the flags read best as pairs
      await run(`create the swtpm-localca CA in ${f.dir}`, 'swtpm_localca', [
        '--type', 'ek', '--ek', modulus.toString('hex'), '--dir', scratch,
        '--configfile', f.localcaConf, '--optsfile', f.localcaOptions,
        '--tpm2', '--tpm-spec-family', '2.0', '--tpm-spec-revision', '164', '--tpm-spec-level', '0',
        '--tpm-manufacturer', 'id:00001014', '--tpm-model', 'swtpm', '--tpm-version', 'id:20191023',
        '--vmid', 'sextant-ca-bootstrap', '--logfile', join(f.dir, 'localca.log'),
      ]);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }
  lockPrivateKeys(f.stateDir);
  return readLocalCa(f.dir);
}

/** swtpm_localca writes its root and signing keys 0640; secrets here are 0600 (also repairs an older workspace). */
function lockPrivateKeys(stateDir: string): void {
  for (const name of readdirSync(stateDir)) {
    if (/(privkey|signkey).*\.pem$/.test(name)) chmodSync(join(stateDir, name), 0o600);
  }
}

/** Reads the CA certificates once at least one TPM has been manufactured (or ensureLocalCa ran). */
export async function readLocalCa(dir: string): Promise<LocalCa> {
  const f = writeCaConfig(dir);
  return {
    dir: f.dir,
    setupConf: f.setupConf,
    rootPem: await readFile(f.rootCert, 'utf8'),
    issuerPem: await readFile(f.issuerCert, 'utf8'),
  };
}

/**
 * Manufactures a TPM in `stateDir`: EKs (RSA 0x81010001, ECC 0x81010016), EK certificate and platform certificate
 * signed by the CA in `caDir`, SHA-256 bank only.
 */
export async function manufactureTpm(
  stateDir: string,
  caDir: string,
  vmId?: string,
  /** Where swtpm_setup also writes the EK certificates it made (DER, one per EK): the operator's record of them. */
  ekCertDir?: string,
): Promise<void> {
  const { setupConf } = writeCaConfig(caDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  if (ekCertDir) mkdirSync(ekCertDir, { recursive: true, mode: 0o700 });
  await run(`manufacture TPM${vmId ? ` for ${vmId}` : ''}`, 'swtpm_setup', [
    '--tpm2',
    '--tpmstate',
    resolve(stateDir),
    '--config',
    setupConf,
    '--create-ek-cert',
    '--create-platform-cert',
    ...(vmId ? ['--vmid', vmId] : []),
    ...(ekCertDir ? ['--write-ek-cert-files', resolve(ekCertDir)] : []),
    '--overwrite',
  ]);
  // swtpm_setup made the CA on first use when ensureLocalCa did not run first
  lockPrivateKeys(writeCaConfig(caDir).stateDir);
}

/**
 * Starts swtpm as a daemon serving QEMU over a unix control socket. It exits by itself when QEMU closes the
 * connection (--terminate), so a VM that is gone never leaves its TPM behind.
 */
export async function startSwtpm(
  stateDir: string,
  socketPath: string,
  pidFile: string,
  logFile: string,
): Promise<void> {
  await run('start swtpm', 'swtpm', [
    'socket',
    '--tpm2',
    '--tpmstate',
    `dir=${resolve(stateDir)}`,
    '--ctrl',
    `type=unixio,path=${socketPath}`,
    '--log',
    `file=${resolve(logFile)},level=1`,
    '--pid',
    `file=${resolve(pidFile)}`,
    '--terminate',
    '--daemon',
  ]);
}

/**
 * The EK hashes (common/contracts/owner.ts ekKeyHash) of the certificates swtpm_setup wrote into `ekCertDir`, RSA
 * first (the EK the agent attests with): what the provider, which made the TPM, vouches for.
 */
export function ekHashesIn(ekCertDir: string): string[] {
  const files = readdirSync(ekCertDir)
    .filter((f) => f.endsWith('.crt'))
    .sort((a, b) => Number(b.startsWith('ek-rsa')) - Number(a.startsWith('ek-rsa')) || a.localeCompare(b));
  if (files.length === 0) throw new Error(`${ekCertDir}: swtpm_setup wrote no EK certificate`);
  return files.map((f) => {
    const spki = new X509Certificate(readFileSync(join(ekCertDir, f))).publicKey.export({
      type: 'spki',
      format: 'der',
    });
    return ekKeyHash(spki);
  });
}
