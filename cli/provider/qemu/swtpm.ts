// One swtpm per VM, manufactured with EK + platform certificates from a PRIVATE swtpm-localca CA that lives in
// the workspace (the system CA under /var/lib/swtpm-localca is never touched).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { run } from './exec.js';

export interface LocalCa {
  dir: string;
  setupConf: string;
  /** Root certificate (PEM) the EK certificates chain to, via `issuerPem`. */
  rootPem: string;
  issuerPem: string;
}

/** Creates the CA configuration in `dir` (idempotent); the CA itself is made by swtpm_localca on first use. */
export function localCaConfig(dir: string): { setupConf: string; stateDir: string } {
  const abs = resolve(dir);
  const stateDir = join(abs, 'localca');
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const conf = join(abs, 'swtpm-localca.conf');
  const options = join(abs, 'swtpm-localca.options');
  const setupConf = join(abs, 'swtpm_setup.conf');
  if (!existsSync(setupConf)) {
    writeFileSync(
      conf,
      `statedir = ${stateDir}\nsigningkey = ${stateDir}/signkey.pem\nissuercert = ${stateDir}/issuercert.pem\ncertserial = ${stateDir}/certserial\n`,
    );
    writeFileSync(
      options,
      '--platform-manufacturer Sextant\n--platform-version 2.1\n--platform-model swtpm\n',
    );
    writeFileSync(
      setupConf,
      `create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${conf}\ncreate_certs_tool_options = ${options}\nactive_pcr_banks = sha256\n`,
    );
  }
  return { setupConf, stateDir };
}

/** Reads the CA certificates once at least one TPM has been manufactured. */
export async function readLocalCa(dir: string): Promise<LocalCa> {
  const { setupConf, stateDir } = localCaConfig(dir);
  return {
    dir: resolve(dir),
    setupConf,
    rootPem: await readFile(join(stateDir, 'swtpm-localca-rootca-cert.pem'), 'utf8'),
    issuerPem: await readFile(join(stateDir, 'issuercert.pem'), 'utf8'),
  };
}

/** Manufactures a TPM in `stateDir`: EKs, EK certificate and platform certificate signed by the local CA. */
export async function manufactureTpm(stateDir: string, caDir: string, vmId: string): Promise<void> {
  const { setupConf } = localCaConfig(caDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  await run(`manufacture TPM for ${vmId}`, 'swtpm_setup', [
    '--tpm2',
    '--tpmstate',
    resolve(stateDir),
    '--config',
    setupConf,
    '--create-ek-cert',
    '--create-platform-cert',
    '--vmid',
    vmId,
    '--overwrite',
  ]);
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
