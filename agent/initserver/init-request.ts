import * as v from 'valibot';
import { MASTER_SECRET_BYTES, type MasterSecret, SALT_BYTES } from '../../common/keys.js';
import { cidrProblem, isDnsLabel, isSan } from '../../common/net.js';
import { checkedString, matching, parseWith, SchemaError } from '../../common/schema.js';
import type { InitRequest } from '../../gen/proto/init.js';
import { type Component, componentsSchema } from '../components/spec.js';

/** A request that passed every check: what the init steps work from. */
export interface InitPlan {
  initSecret: Buffer;
  masterSecret: MasterSecret;
  measurementSalt: Buffer;
  kubernetesVersion: string;
  components: Component[];
  clusterName: string;
  apiServerCertSans: string[];
  serviceCidr: string;
  podCidr: string;
  measurements: string;
}

/** A request field that is wrong; the message names the field and what was expected, never a secret value. */
export class InitRequestError extends Error {
  constructor(
    readonly field: string,
    message: string,
    readonly unsupported = false,
  ) {
    super(`${field}: ${message}`);
    this.name = 'InitRequestError';
  }
}

const buffer = (what: string) => v.custom<Buffer>((b) => Buffer.isBuffer(b), `expected ${what}`);
const bytes = (n: number) =>
  v.pipe(
    buffer(`${n} bytes`),
    v.check((b) => b.length === n, `expected ${n} bytes`),
  );

const initRequestSchema = v.object({
  initSecret: v.pipe(
    buffer('the init secret'),
    v.check((b) => b.length > 0, 'must not be empty'),
  ),
  // the kms_uri case is refused before the schema runs
  keySource: v.object({
    $case: v.literal('masterSecret'),
    value: v.object({ key: bytes(MASTER_SECRET_BYTES), salt: bytes(SALT_BYTES) }),
  }),
  measurementSalt: bytes(SALT_BYTES),
  kubernetesVersion: matching(/^v\d+\.\d+\.\d+$/, 'vMAJOR.MINOR.PATCH'),
  kubernetesComponents: v.pipe(componentsSchema, v.minLength(1, 'at least kubeadm is required')),
  clusterName: checkedString('a DNS label', isDnsLabel),
  apiserverCertSans: v.array(checkedString('a DNS name or IP address', isSan)),
  serviceCidr: checkedString('a CIDR', (s) => cidrProblem(s) === undefined, cidrProblem),
  // empty: the default pod network
  podCidr: v.pipe(
    v.string(),
    v.transform((s) => s || '10.244.0.0/16'),
    checkedString('a CIDR', (s) => cidrProblem(s) === undefined, cidrProblem),
  ),
  measurements: v.pipe(
    buffer('the measurements'),
    v.check((b) => b.length > 0, 'the JoinService needs measurements'),
  ),
});

/** The request's own field names (proto snake_case), so an error names what the operator's tooling sent. */
function protoPath(keyPath: string): string {
  return keyPath.replace(/^keySource\.value/, 'masterSecret').replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Checks every field before the node changes in any way. */
export function validateInitRequest(req: InitRequest, checkMeasurements: (text: string) => void): InitPlan {
  if (!req.keySource)
    throw new InitRequestError('master_secret', 'one of master_secret or kms_uri is required');
  if (req.keySource.$case === 'kmsUri') {
    throw new InitRequestError(
      'kms_uri',
      'external KMS is not supported by this release; send master_secret',
      true,
    );
  }
  let r: v.InferOutput<typeof initRequestSchema>;
  try {
    r = parseWith(initRequestSchema, req);
  } catch (err) {
    if (!(err instanceof SchemaError)) throw err;
    throw new InitRequestError(protoPath(err.keyPath), err.detail);
  }
  const measurements = r.measurements.toString('utf8');
  try {
    checkMeasurements(measurements);
  } catch (err) {
    throw new InitRequestError('measurements', (err as Error).message);
  }
  return {
    initSecret: r.initSecret,
    masterSecret: { key: r.keySource.value.key, salt: r.keySource.value.salt },
    measurementSalt: r.measurementSalt,
    kubernetesVersion: r.kubernetesVersion,
    components: r.kubernetesComponents,
    clusterName: r.clusterName,
    apiServerCertSans: r.apiserverCertSans,
    serviceCidr: r.serviceCidr,
    podCidr: r.podCidr,
    measurements,
  };
}
