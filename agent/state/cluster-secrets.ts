import { readFileSync } from 'node:fs';
import * as v from 'valibot';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { decodeBase64 } from '../../common/base64.js';
import { OWNER_SEED_BYTES } from '../../common/contracts/owner.js';
import { MASTER_SECRET_BYTES, SALT_BYTES } from '../../common/keys.js';
import { endpointProblem, isDnsLabel } from '../../common/net.js';
import { readTextIfExists } from '../../common/read-if-exists.js';
import { checkedString, integer, matching, parseWith, strictObject } from '../../common/schema.js';
import { componentsSchema } from '../components/spec.js';
import { statePath } from '../lifecycle/layout.js';

const bytes = (n: number) =>
  v.pipe(
    v.string(`expected base64 of ${n} bytes`),
    v.check((s) => decodeBase64(s)?.length === n, `expected base64 of ${n} bytes`),
    v.transform((s) => decodeBase64(s) as Buffer),
  );

/**
 * What a control-plane node keeps so its JoinService can admit nodes after a restart: the master secret (keys
 * for every disk), the measurement salt, the measurements nodes are checked against, and what joining nodes
 * install. Lives in the node's state directory (on the encrypted state disk on a real node), mode 0600.
 */
const clusterSecretsSchema = strictObject(
  {
    masterSecret: strictObject({ key: bytes(MASTER_SECRET_BYTES), salt: bytes(SALT_BYTES) }),
    measurementSalt: bytes(SALT_BYTES),
    /** The measurements file (JSON text) joining nodes are checked against; without it nobody could join. */
    measurements: v.pipe(
      v.string('expected the measurements (JSON text)'),
      v.nonEmpty('expected the measurements (JSON text)'),
    ),
    kubernetesVersion: matching(/^v\d+\.\d+\.\d+$/, 'vMAJOR.MINOR.PATCH'),
    components: componentsSchema,
    apiServerEndpoint: checkedString('host:port', (s) => endpointProblem(s) === undefined),
    clusterName: checkedString('a DNS label', isDnsLabel),
    /**
     * The operator's owner-key seed (common/contracts/owner.ts, derived from the init secret): lets the JoinService
     * prove to fresh nodes that it belongs to their operator and verify the operator's inventory. Absent in files
     * written before it existed: such a JoinService admits no fresh node.
     */
    ownerSeed: v.optional(bytes(OWNER_SEED_BYTES)),
    /**
     * The highest inventory serial the serving JoinService had taken when it made this control plane's ticket:
     * this node's JoinService never takes a lower one. Absent on the first control plane.
     */
    inventorySerial: v.optional(
      integer(0, Number.MAX_SAFE_INTEGER, 'an inventory serial (a non-negative integer)'),
    ),
  },
  'a JSON object',
);

export type ClusterSecrets = v.InferOutput<typeof clusterSecretsSchema>;

/** The serialized form: what the state directory holds and what a control-plane joiner receives, byte for byte. */
export function serializeClusterSecrets(secrets: ClusterSecrets): string {
  return JSON.stringify({
    masterSecret: {
      key: secrets.masterSecret.key.toString('base64'),
      salt: secrets.masterSecret.salt.toString('base64'),
    },
    measurementSalt: secrets.measurementSalt.toString('base64'),
    measurements: secrets.measurements,
    kubernetesVersion: secrets.kubernetesVersion,
    components: secrets.components,
    apiServerEndpoint: secrets.apiServerEndpoint,
    clusterName: secrets.clusterName,
    ...(secrets.ownerSeed ? { ownerSeed: secrets.ownerSeed.toString('base64') } : {}),
    ...(secrets.inventorySerial !== undefined ? { inventorySerial: secrets.inventorySerial } : {}),
  });
}

/** Parses the serialized form; `source` names it in errors. Never echoes the content: it holds the master secret. */
export function parseClusterSecrets(source: string, text: string): ClusterSecrets {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`${source}: not valid JSON`);
  }
  try {
    // redacted: the values are secrets
    return parseWith(clusterSecretsSchema, raw, { redact: true });
  } catch (err) {
    throw new Error(`${source}: ${(err as Error).message}`);
  }
}

/** The one owner of the cluster-secrets file in a state directory: written atomically, mode 0600. */
export class ClusterSecretsStore {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = statePath(stateDir, 'clusterSecrets');
  }

  /** The secrets, or null when this node holds none (a worker, or a control plane that never got them). */
  async load(): Promise<ClusterSecrets | null> {
    const text = await readTextIfExists(this.path);
    if (text === undefined) return null;
    return parseClusterSecrets(this.path, text);
  }

  async save(secrets: ClusterSecrets): Promise<void> {
    await writeFileAtomic(this.path, serializeClusterSecrets(secrets), { mode: 0o600 });
  }

  /**
   * Takes the file a control-plane join ticket carried: parsed first, so a malformed file is refused before it
   * replaces anything, then stored as this node's own.
   */
  async adopt(file: Buffer): Promise<ClusterSecrets> {
    const secrets = parseClusterSecrets('join ticket cluster_secrets', file.toString('utf8'));
    await this.save(secrets);
    return secrets;
  }

  /**
   * The stored file as bytes, read on demand so a control-plane joiner always gets the current one. Synchronous
   * because the JoinService builds its ticket from it inline.
   */
  readFileSync(): Buffer {
    return readFileSync(this.path);
  }
}
