// The certificates every control plane of a cluster shares — what kubeadm's upload-certs puts in the kubeadm-certs
// Secret and download-certs fetches. Sextant hands them over in the attested control-plane ticket instead (the
// Constellation way): no certificate key, no shared Secret that each control-plane join would overwrite, so two
// control planes can join at once. With the files on disk and no certificate key, kubeadm join --control-plane checks
// they are there (preflight) and skips download-certs.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file.js';

/** Paths relative to /etc/kubernetes/pki (kubeadm's certificatesDir), as kubeadm's copyCertsToSecret lists them. */
export const CONTROL_PLANE_CERTIFICATES: readonly string[] = [
  'ca.crt',
  'ca.key',
  'sa.key',
  'sa.pub',
  'front-proxy-ca.crt',
  'front-proxy-ca.key',
  'etcd/ca.crt',
  'etcd/ca.key',
];

/** The kubeadm phase the handed-over files replace. */
export const DOWNLOAD_CERTS_PHASE = 'control-plane-prepare/download-certs';

export interface CertificateFile {
  path: string;
  data: Buffer;
}

/** Reads the shared certificates of this control plane (every one must be there: a partial set joins nobody). */
export async function readControlPlaneCertificates(pkiDir: string): Promise<CertificateFile[]> {
  return Promise.all(
    CONTROL_PLANE_CERTIFICATES.map(async (path) => {
      try {
        return { path, data: await readFile(join(pkiDir, path)) };
      } catch (err) {
        throw new Error(
          `control-plane certificate ${path}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
          {
            cause: err,
          },
        );
      }
    }),
  );
}

/**
 * Writes the ticket's certificates under `pkiDir`, keys 0600. Exactly the listed files, each once: anything else in
 * the ticket (another path, a duplicate, a missing one) is refused before a file is written.
 */
export async function writeControlPlaneCertificates(
  pkiDir: string,
  files: readonly CertificateFile[],
): Promise<void> {
  const byPath = new Map<string, Buffer>();
  for (const f of files) {
    if (!CONTROL_PLANE_CERTIFICATES.includes(f.path)) {
      throw new Error(
        `control-plane files: ${JSON.stringify(f.path.slice(0, 80))} is not a shared certificate`,
      );
    }
    if (byPath.has(f.path)) throw new Error(`control-plane files: ${f.path} given twice`);
    if (f.data.length === 0) throw new Error(`control-plane files: ${f.path} is empty`);
    byPath.set(f.path, f.data);
  }
  const missing = CONTROL_PLANE_CERTIFICATES.filter((p) => !byPath.has(p));
  if (missing.length > 0) throw new Error(`control-plane files: missing ${missing.join(', ')}`);
  for (const [path, data] of byPath) {
    await writeFileAtomic(join(pkiDir, path), data, { mode: path.endsWith('.key') ? 0o600 : 0o644 });
  }
}
