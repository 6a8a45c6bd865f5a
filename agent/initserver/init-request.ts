import { MASTER_SECRET_BYTES, type MasterSecret, SALT_BYTES } from '../../common/keys.js';
import { cidrProblem, isSan } from '../../common/net.js';
import type { InitRequest } from '../../gen/proto/init.js';
import { type Component, validateComponents } from '../components/spec.js';

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

const VERSION = /^v\d+\.\d+\.\d+$/;

/** Checks every field before the node changes in any way. */
export function validateInitRequest(req: InitRequest, checkMeasurements: (text: string) => void): InitPlan {
  if (req.initSecret.length === 0) throw new InitRequestError('init_secret', 'must not be empty');
  if (!req.keySource)
    throw new InitRequestError('master_secret', 'one of master_secret or kms_uri is required');
  if (req.keySource.$case === 'kmsUri') {
    throw new InitRequestError(
      'kms_uri',
      'external KMS is not supported by this release; send master_secret',
      true,
    );
  }
  const master = req.keySource.value;
  if (master.key.length !== MASTER_SECRET_BYTES) {
    throw new InitRequestError(
      'master_secret.key',
      `expected ${MASTER_SECRET_BYTES} bytes, got ${master.key.length}`,
    );
  }
  if (master.salt.length !== SALT_BYTES) {
    throw new InitRequestError(
      'master_secret.salt',
      `expected ${SALT_BYTES} bytes, got ${master.salt.length}`,
    );
  }
  if (req.measurementSalt.length !== SALT_BYTES) {
    throw new InitRequestError(
      'measurement_salt',
      `expected ${SALT_BYTES} bytes, got ${req.measurementSalt.length}`,
    );
  }
  if (!VERSION.test(req.kubernetesVersion)) {
    throw new InitRequestError(
      'kubernetes_version',
      `expected vMAJOR.MINOR.PATCH, got ${JSON.stringify(req.kubernetesVersion)}`,
    );
  }
  let components: Component[];
  try {
    components = validateComponents(req.kubernetesComponents);
  } catch (err) {
    throw new InitRequestError('kubernetes_components', (err as Error).message);
  }
  if (components.length === 0)
    throw new InitRequestError('kubernetes_components', 'at least kubeadm is required');
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(req.clusterName)) {
    throw new InitRequestError(
      'cluster_name',
      `expected a DNS label, got ${JSON.stringify(req.clusterName)}`,
    );
  }
  req.apiserverCertSans.forEach((san, i) => {
    if (!isSan(san)) {
      throw new InitRequestError(
        `apiserver_cert_sans[${i}]`,
        `expected a DNS name or IP address, got ${JSON.stringify(san)}`,
      );
    }
  });
  const serviceProblem = cidrProblem(req.serviceCidr);
  if (serviceProblem) throw new InitRequestError('service_cidr', serviceProblem);
  const podCidr = req.podCidr || '10.244.0.0/16';
  const podProblem = cidrProblem(podCidr);
  if (podProblem) throw new InitRequestError('pod_cidr', podProblem);
  if (req.measurements.length === 0)
    throw new InitRequestError('measurements', 'the JoinService needs measurements');
  const measurements = req.measurements.toString('utf8');
  try {
    checkMeasurements(measurements);
  } catch (err) {
    throw new InitRequestError('measurements', (err as Error).message);
  }
  return {
    initSecret: req.initSecret,
    masterSecret: { key: master.key, salt: master.salt },
    measurementSalt: req.measurementSalt,
    kubernetesVersion: req.kubernetesVersion,
    components,
    clusterName: req.clusterName,
    apiServerCertSans: [...req.apiserverCertSans],
    serviceCidr: req.serviceCidr,
    podCidr,
    measurements,
  };
}
