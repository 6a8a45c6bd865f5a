import { parseDocument } from 'yaml';
import { endpointProblem } from '../../common/net.js';

export class KubeconfigError extends Error {
  override name = 'KubeconfigError';
}

/**
 * Points every cluster of a kubeconfig at https://<endpoint>. kubeadm writes the local advertise address;
 * the operator needs the control-plane endpoint. Comments and key order are kept. The kubeconfig holds the
 * admin key, so errors describe its structure and never quote its content.
 */
export function rewriteKubeconfigServer(kubeconfig: Buffer, endpoint: string): Buffer {
  const problem = endpointProblem(endpoint);
  if (problem) throw new KubeconfigError(`endpoint: ${problem} (got ${JSON.stringify(endpoint)})`);

  const doc = parseDocument(kubeconfig.toString('utf8'), { uniqueKeys: true });
  if (doc.errors.length > 0)
    throw new KubeconfigError(`kubeconfig is not valid YAML (${doc.errors[0]?.code})`);
  const root = doc.toJS() as unknown;
  if (!isRecord(root)) throw new KubeconfigError('kubeconfig: expected a mapping at the top level');
  if (root.apiVersion !== 'v1') throw new KubeconfigError('kubeconfig apiVersion: expected v1');
  if (root.kind !== 'Config') throw new KubeconfigError('kubeconfig kind: expected Config');
  const clusters = root.clusters;
  if (!Array.isArray(clusters) || clusters.length === 0) {
    throw new KubeconfigError('kubeconfig clusters: expected a non-empty list');
  }
  clusters.forEach((c, i) => {
    if (!isRecord(c) || typeof c.name !== 'string' || !isRecord(c.cluster)) {
      throw new KubeconfigError(`kubeconfig clusters[${i}]: expected {name, cluster}`);
    }
    if (typeof c.cluster.server !== 'string') {
      throw new KubeconfigError(`kubeconfig clusters[${i}].cluster.server: missing`);
    }
    doc.setIn(['clusters', i, 'cluster', 'server'], `https://${endpoint}`);
  });
  return Buffer.from(doc.toString({ lineWidth: 0 }), 'utf8');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
