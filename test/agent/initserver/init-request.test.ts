// The init request's checks: every field refused names the proto field and what was expected, never a secret.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { InitRequestError, validateInitRequest } from '../../../agent/initserver/init-request.js';
import type { InitRequest } from '../../../gen/proto/init.js';
import { validInitRequest } from '../fakes.js';

const secretKey = randomBytes(32);

/** The shared valid request with a known master key, upper-case hex and no pod CIDR: what the plan normalises. */
function request(overrides: Partial<InitRequest> = {}): InitRequest {
  const valid = validInitRequest();
  return validInitRequest({
    keySource: { $case: 'masterSecret', value: { key: secretKey, salt: randomBytes(32) } },
    kubernetesComponents: valid.kubernetesComponents.map((c) => ({ ...c, sha256: c.sha256.toUpperCase() })),
    apiserverCertSans: ['sextant.example.test', '10.0.0.1'],
    podCidr: '',
    ...overrides,
  });
}

const accept = () => undefined;

describe('validateInitRequest', () => {
  it('turns a good request into the plan: default pod CIDR, hex lowercased', () => {
    const plan = validateInitRequest(request(), accept);
    assert.equal(plan.podCidr, '10.244.0.0/16');
    assert.equal(plan.components[0]?.sha256, 'ab'.repeat(32));
    assert.equal(plan.masterSecret.key, secretKey);
    assert.equal(plan.measurements, '{}');
  });

  it('refuses each bad field by its proto name, before anything happens', () => {
    const key = (k: Buffer) => ({ $case: 'masterSecret' as const, value: { key: k, salt: randomBytes(32) } });
    const cases: [Partial<InitRequest>, string, RegExp, boolean?][] = [
      [{ initSecret: Buffer.alloc(0) }, 'init_secret', /must not be empty/],
      [{ keySource: undefined }, 'master_secret', /one of master_secret or kms_uri is required/],
      [{ keySource: { $case: 'kmsUri', value: 'kms://x' } }, 'kms_uri', /not supported/, true],
      [{ keySource: key(randomBytes(16)) }, 'master_secret.key', /expected 32 bytes, got 16 bytes/],
      [{ measurementSalt: randomBytes(31) }, 'measurement_salt', /expected 32 bytes, got 31 bytes/],
      [{ kubernetesVersion: '1.31' }, 'kubernetes_version', /expected vMAJOR\.MINOR\.PATCH, got "1\.31"/],
      [{ kubernetesComponents: [] }, 'kubernetes_components', /at least kubeadm is required/],
      [
        {
          kubernetesComponents: [
            { url: 'ftp://x/k', sha256: 'ab'.repeat(32), installPath: '/k', extract: false },
          ],
        },
        'kubernetes_components[0].url',
        /scheme ftp: not allowed/,
      ],
      [{ clusterName: 'Bad_Name' }, 'cluster_name', /expected a DNS label, got "Bad_Name"/],
      [
        { apiserverCertSans: ['ok', 'a..b'] },
        'apiserver_cert_sans[1]',
        /DNS name or IP address, got "a\.\.b"/,
      ],
      [{ serviceCidr: '10.96.0.1/12' }, 'service_cidr', /host bits are set/],
      [{ podCidr: '10.244.0.0/33' }, 'pod_cidr', /prefix must be 0-32/],
      [{ measurements: Buffer.alloc(0) }, 'measurements', /the JoinService needs measurements/],
    ];
    for (const [patch, field, why, unsupported] of cases) {
      assert.throws(
        () => validateInitRequest(request(patch), accept),
        (err: unknown) =>
          err instanceof InitRequestError &&
          err.field === field &&
          why.test(err.message) &&
          err.unsupported === (unsupported ?? false) &&
          !err.message.includes(secretKey.toString('hex')),
        `${field}: ${JSON.stringify(patch).slice(0, 80)}`,
      );
    }
  });

  it('refuses measurements the caller cannot parse, with its reason', () => {
    assert.throws(
      () =>
        validateInitRequest(request(), () => {
          throw new Error('PCR 4: expected 64 hex digits');
        }),
      /^InitRequestError: measurements: PCR 4: expected 64 hex digits$/,
    );
  });
});
