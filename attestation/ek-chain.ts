import { createHash, X509Certificate } from 'node:crypto';
import { AttestationError } from './errors.js';
import type { TpmPublic } from './tpm-structures.js';

/** TCG EK certificate extended key usage (TCG EK Credential Profile, tcg-kp-EKCertificate). */
export const EK_CERTIFICATE_EKU = '2.23.133.8.1';

export interface TrustOptions {
  /**
   * CA certificates (PEM text or DER) EK certificates must chain to: the root(s) and any intermediates. For swtpm
   * this is the swtpm-localca root and its issuer certificate. A chain must end in a self-signed certificate of this
   * list; intermediates are taken from the list only.
   */
  ekCaCertificates: Array<string | Buffer>;
  /** Time to check validity periods against; defaults to now. */
  now?: () => Date;
}

/** Parsed trust anchors plus the verifier's caches. Create once and reuse: the caches are what makes it fast. */
export interface Trust {
  readonly cas: readonly X509Certificate[];
  readonly now: () => Date;
  /** EK chain verdicts by SHA-256(certificate DER ‖ EK SPKI): null (ok) or the error, each until `expires` (ms) */
  readonly ekChainCache: Map<string, { verdict: AttestationError | null; expires: number }>;
}

const CACHE_LIMIT = 4096;
/** A good verdict is re-examined at least this often (and when a certificate of the chain expires). */
const OK_TTL_MS = 3600_000;
/** A failure is remembered briefly: it may be a clock issue that resolves itself. */
const FAIL_TTL_MS = 60_000;

function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

export function createTrust(options: TrustOptions): Trust {
  const cas: X509Certificate[] = [];
  options.ekCaCertificates.forEach((entry, i) => {
    const parts = typeof entry === 'string' ? splitPem(entry) : [entry];
    if (parts.length === 0) {
      throw new AttestationError('config', `ekCaCertificates[${i}]: no PEM certificate found`);
    }
    for (const part of parts) {
      try {
        cas.push(new X509Certificate(part));
      } catch (err) {
        throw new AttestationError(
          'config',
          `ekCaCertificates[${i}]: not a certificate (${(err as Error).message})`,
        );
      }
    }
  });
  if (cas.length === 0)
    throw new AttestationError('config', 'ekCaCertificates: at least one CA certificate is required');
  return { cas, now: options.now ?? (() => new Date()), ekChainCache: new Map() };
}

function describe(cert: X509Certificate): string {
  return `subject "${cert.subject.replace(/\n/g, ', ')}", issuer "${cert.issuer.replace(/\n/g, ', ')}"`;
}

function checkValidity(cert: X509Certificate, now: Date, role: string): void {
  if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) {
    throw new AttestationError(
      'ek-chain',
      `${role} certificate (${describe(cert)}) is not valid at ${now.toISOString()} (valid ${cert.validFrom} to ${cert.validTo})`,
    );
  }
}

/** Verifies the chain; returns when the earliest certificate in it expires (ms since epoch). */
function verifyChain(trust: Trust, leaf: X509Certificate): number {
  const now = trust.now();
  checkValidity(leaf, now, 'EK');
  let expires = new Date(leaf.validTo).getTime();
  let current = leaf;
  // The chain can be no longer than the CA list; the bound also stops cycles.
  for (let depth = 0; depth <= trust.cas.length; depth++) {
    const issuer = trust.cas.find((ca) => current.checkIssued(ca) && current.verify(ca.publicKey));
    if (!issuer) {
      throw new AttestationError(
        'ek-chain',
        `${depth === 0 ? 'EK' : 'CA'} certificate (${describe(current)}) is not signed by any configured EK CA`,
      );
    }
    if (!issuer.ca) {
      throw new AttestationError(
        'ek-chain',
        `issuer certificate (${describe(issuer)}) is not a CA (basicConstraints)`,
      );
    }
    checkValidity(issuer, now, 'CA');
    expires = Math.min(expires, new Date(issuer.validTo).getTime());
    if (issuer.checkIssued(issuer) && issuer.verify(issuer.publicKey)) return expires; // reached a configured root
    current = issuer;
  }
  throw new AttestationError('ek-chain', 'no chain to a self-signed configured CA');
}

/**
 * Checks an EK certificate against the configured CAs and that it certifies exactly the EK the attester presents:
 * chain, validity, EKU 2.23.133.8.1 (when the certificate has an EKU extension), and SPKI equality with `ek`.
 * Verdicts (including failures) are cached by the bytes checked. Returns SHA-256 of the certificate.
 */
export function verifyEkCertificate(trust: Trust, certificateDer: Buffer, ek: TpmPublic): Buffer {
  const certHash = createHash('sha256').update(certificateDer).digest();
  // the EK's name is already a hash of its public area
  const cacheKey = `${certHash.toString('base64')}:${ek.name.toString('base64')}`;
  const nowMs = trust.now().getTime();
  const cached = trust.ekChainCache.get(cacheKey);
  if (cached && cached.expires > nowMs) {
    if (cached.verdict) throw cached.verdict;
    return certHash;
  }
  const ekSpki = ek.key.export({ type: 'spki', format: 'der' });
  try {
    if (certificateDer.length === 0) {
      throw new AttestationError('ek-chain', 'the attester presented no EK certificate');
    }
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(certificateDer);
    } catch (err) {
      throw new AttestationError(
        'ek-chain',
        `EK certificate is not valid DER X.509 (${(err as Error).message})`,
      );
    }
    const chainExpires = verifyChain(trust, leaf);
    // Node exposes the extended key usage OIDs as `keyUsage` (undefined when the extension is absent).
    const eku = leaf.keyUsage as string[] | undefined;
    if (eku && eku.length > 0 && !eku.includes(EK_CERTIFICATE_EKU)) {
      throw new AttestationError(
        'ek-chain',
        `EK certificate extended key usage ${eku.join(', ')} lacks ${EK_CERTIFICATE_EKU} (EK certificate)`,
      );
    }
    const certSpki = leaf.publicKey.export({ type: 'spki', format: 'der' });
    if (!certSpki.equals(ekSpki)) {
      throw new AttestationError(
        'ek-chain',
        'the EK certificate certifies a different key than the presented EK public',
      );
    }
    remember(trust, cacheKey, null, Math.min(chainExpires, nowMs + OK_TTL_MS));
    return certHash;
  } catch (err) {
    if (err instanceof AttestationError) remember(trust, cacheKey, err, nowMs + FAIL_TTL_MS);
    throw err;
  }
}

function remember(trust: Trust, key: string, verdict: AttestationError | null, expires: number): void {
  if (trust.ekChainCache.size >= CACHE_LIMIT) trust.ekChainCache.clear();
  trust.ekChainCache.set(key, { verdict, expires });
}
