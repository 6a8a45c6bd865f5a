/**
 * kubeadm prints secrets in its ordinary output: bootstrap tokens ("abcdef.0123456789abcdef", in the join
 * command init suggests and on its own line from `token create`) and the certificate key (64 hex digits after
 * upload-certs). CA-cert hashes also have 64 hex digits but are public and keep their "sha256:" prefix.
 */
const TOKEN = /\b[a-z0-9]{6}\.[a-z0-9]{16}\b/g;
const CERT_KEY = /(?<!sha256:)\b[0-9a-f]{64}\b/g;

export const REDACTED = '<redacted>';

export function redactSecrets(line: string): string {
  return line.replace(TOKEN, REDACTED).replace(CERT_KEY, REDACTED);
}
