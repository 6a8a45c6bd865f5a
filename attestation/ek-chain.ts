import 'reflect-metadata';
import { createHash, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { AttestationError } from './errors.js';
import { TPM_ALG, TPMA_OBJECT, type TpmPublic } from './tpm-structures.js';

/** TCG EK certificate extended key usage (TCG EK Credential Profile, tcg-kp-EKCertificate). */
export const EK_CERTIFICATE_EKU = '2.23.133.8.1';

/**
 * The authPolicy digests of the TCG EK Credential Profile (2.5, section 2.1.5) templates, by nameAlg: PolicyA
 * (PolicySecret(TPM_RH_ENDORSEMENT), low range L-1/L-2, userWithAuth clear) and PolicyB (PolicyOR of PolicyA and
 * the NV-index policy, high range H-1..H-7, userWithAuth set). An EK with another policy is a key its owner can
 * use without the endorsement hierarchy's consent: not an EK.
 */
const EK_POLICIES: ReadonlyArray<{ nameAlg: number; digest: string; userWithAuth: boolean; name: string }> = [
  {
    nameAlg: TPM_ALG.SHA256,
    digest: '837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa',
    userWithAuth: false,
    name: 'PolicyA SHA-256 (template L-1/L-2)',
  },
  {
    nameAlg: TPM_ALG.SHA256,
    digest: 'ca3d0a99a2b93906f7a3342414efcfb3a385d44cd1fd459089d19b5071c0b7a0',
    userWithAuth: true,
    name: 'PolicyB SHA-256 (template H-1..H-3)',
  },
  {
    nameAlg: TPM_ALG.SHA384,
    digest:
      'b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e12',
    userWithAuth: true,
    name: 'PolicyB SHA-384 (template H-4/H-5)',
  },
  {
    nameAlg: TPM_ALG.SHA512,
    digest:
      'b8221ca69e8550a4914de3faa6a18c072cc01208073a928d5d66d59ef79e49a429c41a6b269571d57edb25fbdb1838425608b413cd616a5f6db5b6071af99bea',
    userWithAuth: true,
    name: 'PolicyB SHA-512 (template H-6/H-7)',
  },
];

/** What every TCG EK template sets: a storage key of this TPM, usable only through the endorsement policy. */
const EK_REQUIRED_ATTRIBUTES =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.adminWithPolicy |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.decrypt;

function hex8(v: number): string {
  return `0x${v.toString(16).padStart(8, '0')}`;
}

/**
 * Checks an EK public area against the TCG EK templates: a restricted decryption key that cannot leave the TPM
 * (fixedTPM, fixedParent, sensitiveDataOrigin, adminWithPolicy, restricted, decrypt, not sign), with one of the
 * standard endorsement policies and an AES-CFB symmetric parent definition. Credential activation only proves
 * something when the key it wraps to is such a key.
 */
export function checkEkTemplate(ek: TpmPublic): void {
  const fail = (what: string): AttestationError =>
    new AttestationError('ek-chain', `ek_public is not a TCG EK template: ${what}`);
  const attrs = ek.attributes;
  if ((attrs & EK_REQUIRED_ATTRIBUTES) !== EK_REQUIRED_ATTRIBUTES) {
    const missing = Object.entries(TPMA_OBJECT)
      .filter(([, bit]) => EK_REQUIRED_ATTRIBUTES & bit && !(attrs & bit))
      .map(([name]) => name);
    throw fail(`attributes ${hex8(attrs)} lack ${missing.join(', ')}`);
  }
  if (attrs & TPMA_OBJECT.sign) throw fail(`attributes ${hex8(attrs)} include sign (an EK only decrypts)`);
  const policy = ek.authPolicy.toString('hex');
  const known = EK_POLICIES.find((p) => p.nameAlg === ek.nameAlg && p.digest === policy);
  if (known === undefined) {
    throw fail(
      `authPolicy ${policy || '(empty)'} with nameAlg 0x${ek.nameAlg.toString(16)} is none of the standard EK policies`,
    );
  }
  if (Boolean(attrs & TPMA_OBJECT.userWithAuth) !== known.userWithAuth) {
    throw fail(
      `userWithAuth is ${attrs & TPMA_OBJECT.userWithAuth ? 'set' : 'clear'}; ${known.name} requires it ${known.userWithAuth ? 'set' : 'clear'}`,
    );
  }
  if (ek.symmetric.algorithm !== TPM_ALG.AES || ek.symmetric.mode !== TPM_ALG.CFB) {
    throw fail(
      `symmetric 0x${ek.symmetric.algorithm.toString(16)}/0x${ek.symmetric.mode.toString(16)}; expected AES in CFB mode`,
    );
  }
  if (ek.scheme.scheme !== TPM_ALG.NULL)
    throw fail(`scheme 0x${ek.scheme.scheme.toString(16)}; expected NULL`);
}

export interface TrustOptions {
  /**
   * CA certificates (PEM text or DER) EK certificates must chain to: the root(s) and any intermediates. For swtpm
   * this is the swtpm-localca root and its issuer certificate. A chain must end in a self-signed certificate of this
   * list; intermediates are taken from the list only.
   */
  ekCaCertificates: Array<string | Buffer>;
  /**
   * Issuing CAs (PEM or DER; each must also be in `ekCaCertificates`) whose EK certificates may lack the EK
   * extended key usage: an explicit per-CA opt-out for vendors that omit it. Every other CA's leaves must carry
   * 2.23.133.8.1, so a certificate the CA issued for another purpose never passes as an EK certificate.
   */
  ekuOptionalFor?: Array<string | Buffer>;
  /** Time to check validity periods against; defaults to now. */
  now?: () => Date;
}

/** Parsed trust anchors plus the verifier's caches. Create once and reuse: the caches are what makes it fast. */
export interface Trust {
  readonly cas: readonly X509Certificate[];
  /** SHA-256 fingerprints of the CAs whose leaves may omit the EK EKU */
  readonly ekuOptional: ReadonlySet<string>;
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

function parseCertificates(entries: Array<string | Buffer>, field: string): X509Certificate[] {
  const out: X509Certificate[] = [];
  entries.forEach((entry, i) => {
    const parts = typeof entry === 'string' ? splitPem(entry) : [entry];
    if (parts.length === 0) {
      throw new AttestationError('config', `${field}[${i}]: no PEM certificate found`);
    }
    for (const part of parts) {
      try {
        out.push(new X509Certificate(part));
      } catch (err) {
        throw new AttestationError('config', `${field}[${i}]: not a certificate (${(err as Error).message})`);
      }
    }
  });
  return out;
}

export function createTrust(options: TrustOptions): Trust {
  const cas = parseCertificates(options.ekCaCertificates, 'ekCaCertificates');
  if (cas.length === 0)
    throw new AttestationError('config', 'ekCaCertificates: at least one CA certificate is required');
  const ekuOptional = new Set<string>();
  for (const ca of parseCertificates(options.ekuOptionalFor ?? [], 'ekuOptionalFor')) {
    if (!cas.some((c) => c.fingerprint256 === ca.fingerprint256)) {
      throw new AttestationError('config', `ekuOptionalFor: ${describe(ca)} is not one of ekCaCertificates`);
    }
    ekuOptional.add(ca.fingerprint256);
  }
  return { cas, ekuOptional, now: options.now ?? (() => new Date()), ekChainCache: new Map() };
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

/**
 * Verifies the chain; returns when the earliest certificate in it expires (ms since epoch) and the leaf's direct
 * issuer.
 */
function verifyChain(trust: Trust, leaf: X509Certificate): { expires: number; issuer: X509Certificate } {
  const now = trust.now();
  checkValidity(leaf, now, 'EK');
  let expires = new Date(leaf.validTo).getTime();
  let current = leaf;
  let direct: X509Certificate | undefined;
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
    direct ??= issuer;
    expires = Math.min(expires, new Date(issuer.validTo).getTime());
    // reached a configured root
    if (issuer.checkIssued(issuer) && issuer.verify(issuer.publicKey)) return { expires, issuer: direct };
    current = issuer;
  }
  throw new AttestationError('ek-chain', 'no chain to a self-signed configured CA');
}

/**
 * Checks an EK certificate against the configured CAs and that it certifies exactly the EK the attester presents:
 * a leaf (not a CA), chain, validity, EKU 2.23.133.8.1 (unless its issuer is opted out), the EK public area
 * against the TCG EK templates, and SPKI equality with `ek`.
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
    // A CA certificate is a key that signs certificates, never a TPM's EK: refused before anything else. Read the
    // extension itself: OpenSSL's notion (`leaf.ca`) ignores CA:TRUE when the key usage lacks keyCertSign.
    if (basicConstraintsCa(certificateDer)) {
      throw new AttestationError(
        'ek-chain',
        `EK certificate (${describe(leaf)}) is a CA certificate (basicConstraints CA:TRUE); an EK certificate is a leaf`,
      );
    }
    const { expires: chainExpires, issuer } = verifyChain(trust, leaf);
    // Node exposes the extended key usage OIDs as `keyUsage` (undefined when the extension is absent).
    const eku = (leaf.keyUsage as string[] | undefined) ?? [];
    if (!eku.includes(EK_CERTIFICATE_EKU) && !trust.ekuOptional.has(issuer.fingerprint256)) {
      throw new AttestationError(
        'ek-chain',
        `EK certificate (${describe(leaf)}) ${eku.length > 0 ? `extended key usage ${eku.join(', ')} lacks` : 'has no extended key usage; required'} ${EK_CERTIFICATE_EKU} (tcg-kp-EKCertificate), and its issuer is not opted out of it`,
      );
    }
    checkEkTemplate(ek);
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

/** Whether the certificate's basicConstraints extension says CA:TRUE, whatever its key usage says. */
function basicConstraintsCa(der: Buffer): boolean {
  const ext = new x509.X509Certificate(der).getExtension(x509.BasicConstraintsExtension);
  return ext?.ca === true;
}

function remember(trust: Trust, key: string, verdict: AttestationError | null, expires: number): void {
  if (trust.ekChainCache.size >= CACHE_LIMIT) trust.ekChainCache.clear();
  trust.ekChainCache.set(key, { verdict, expires });
}
