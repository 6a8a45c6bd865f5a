// Who owns a cluster, written once for the CLI and the agent. The operator's key is derived from the workspace's
// init secret (HKDF): `create` knows it before any node boots and puts its public half into every node's metadata;
// the first node learns the init secret over the attested init channel and keeps the derived seed with the cluster
// secrets, so every JoinService of the cluster (and only those) can prove ownership and verify the inventory.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  hkdfSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import * as v from 'valibot';
import { isDnsLabel } from '../net.js';
import { checkedString, integer, matching, strictObject } from '../schema.js';
import { type NodeRole, nodeRoleSchema } from './node-role.js';

export const OWNER_SEED_BYTES = 32;

/** Ed25519 PKCS#8 DER is this prefix followed by the 32-byte seed. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** The owner key's seed: HKDF-SHA256 of the init secret. The init secret itself never has to be kept. */
export function deriveOwnerSeed(initSecret: Uint8Array): Buffer {
  if (initSecret.length < 16) throw new RangeError('init secret: expected at least 16 bytes');
  return Buffer.from(
    hkdfSync('sha256', initSecret, Buffer.alloc(0), 'sextant owner key v1', OWNER_SEED_BYTES),
  );
}

function privateKeyOf(seed: Uint8Array): KeyObject {
  if (seed.length !== OWNER_SEED_BYTES)
    throw new RangeError(`owner seed: expected ${OWNER_SEED_BYTES} bytes`);
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** The owner public key as metadata carries it: base64 of the Ed25519 SubjectPublicKeyInfo DER. */
export function ownerPublicKeyText(seed: Uint8Array): string {
  return createPublicKey(privateKeyOf(seed)).export({ type: 'spki', format: 'der' }).toString('base64');
}

/** Parses metadata's owner key; only Ed25519 is accepted. */
export function parseOwnerPublicKey(text: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(text, 'base64'), format: 'der', type: 'spki' });
  } catch (err) {
    throw new Error(`owner: not a base64 SubjectPublicKeyInfo (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new Error(`owner: expected an Ed25519 key, got ${key.asymmetricKeyType}`);
  return key;
}

/** The identity a node is known by before it has a name: SHA-256 (hex) of its EK's SubjectPublicKeyInfo DER. */
export function ekKeyHash(ekSpkiDer: Uint8Array): string {
  return createHash('sha256').update(ekSpkiDer).digest('hex');
}

// ---- inventory: the nodes the operator created, by EK ------------------------------------------------------------

export interface InventoryNode {
  name: string;
  role: NodeRole;
  /**
   * ekKeyHash of every EK the node's TPM has a certificate for (swtpm_setup makes an RSA 2048 and an ECC P-384
   * one): the first is the one admissions are recorded under, and any of them identifies the same node.
   */
  eks: string[];
}

export interface SignedInventory {
  /** The cluster the inventory is for: ownerKeyId of the owner key that signed it. */
  owner: string;
  /** Raised on every re-sign: a JoinService never goes back to a lower one. */
  serial: number;
  nodes: InventoryNode[];
  /** Ed25519 by the owner key over inventoryMessage(owner, serial, nodes), base64 */
  signature: string;
}

/**
 * The owner ID an inventory names its cluster by: SHA-256 (hex) of the owner key's SubjectPublicKeyInfo DER. Known
 * to `create` (before any master secret exists) and to every JoinService of the cluster (from its owner seed).
 */
export function ownerKeyId(ownerPublicKey: KeyObject): string {
  return createHash('sha256')
    .update(ownerPublicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

export const inventorySchema = strictObject(
  {
    owner: matching(/^[0-9a-f]{64}$/, '64 lowercase hex characters (the owner ID: SHA-256 of the owner key)'),
    serial: integer(1, Number.MAX_SAFE_INTEGER, 'the inventory serial (a positive integer)'),
    nodes: v.array(
      strictObject(
        {
          name: checkedString('a DNS label', isDnsLabel),
          role: nodeRoleSchema,
          eks: v.pipe(
            v.array(matching(/^[0-9a-f]{64}$/, '64 lowercase hex characters (SHA-256 of an EK public key)')),
            v.minLength(1, 'expected at least one EK'),
          ),
        },
        'a JSON object',
      ),
      'expected a list of nodes',
    ),
    signature: matching(/^[A-Za-z0-9+/]+={0,2}$/, 'a base64 signature'),
  },
  'a JSON object',
);

/** The signed bytes: a label, the owner ID, the serial and the nodes in name order, each field in a fixed order. */
function inventoryMessage(owner: string, serial: number, nodes: InventoryNode[]): Buffer {
  const canonical = [...nodes]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((n) => ({ name: n.name, role: n.role, eks: [...n.eks] }));
  return Buffer.concat([
    Buffer.from('sextant inventory v2\0'),
    Buffer.from(JSON.stringify({ owner, serial, nodes: canonical })),
  ]);
}

/** Signs `nodes` as the inventory with `serial` for the cluster of the owner key `seed` derives. */
export function signInventory(nodes: InventoryNode[], seed: Uint8Array, serial: number): SignedInventory {
  if (!Number.isSafeInteger(serial) || serial < 1)
    throw new RangeError(`inventory serial: expected a positive integer, got ${serial}`);
  const key = privateKeyOf(seed);
  const owner = ownerKeyId(createPublicKey(key));
  return {
    owner,
    serial,
    nodes,
    signature: sign(null, inventoryMessage(owner, serial, nodes), key).toString('base64'),
  };
}

/**
 * Checks the inventory is this cluster's (its owner ID), the owner's signature, and that names and EKs are unique;
 * returns the nodes. An inventory that fails any check is refused whole: one altered entry must not smuggle a
 * control plane in. Whether its serial is new enough is the caller's (agent/joinservice/inventory.ts).
 */
export function verifyInventory(inventory: SignedInventory, ownerPublicKey: KeyObject): InventoryNode[] {
  const expected = ownerKeyId(ownerPublicKey);
  if (inventory.owner !== expected)
    throw new Error(
      `inventory: made for the cluster of owner ${inventory.owner}, this cluster's owner is ${expected} (another cluster's inventory)`,
    );
  let ok = false;
  try {
    ok = verify(
      null,
      inventoryMessage(inventory.owner, inventory.serial, inventory.nodes),
      ownerPublicKey,
      Buffer.from(inventory.signature, 'base64'),
    );
  } catch {
    ok = false;
  }
  if (!ok)
    throw new Error(
      "inventory: the signature does not verify with the owner key (altered, or another operator's)",
    );
  const names = new Set<string>();
  const eks = new Set<string>();
  for (const n of inventory.nodes) {
    if (names.has(n.name)) throw new Error(`inventory: node name ${n.name} appears twice`);
    names.add(n.name);
    for (const ek of n.eks) {
      if (eks.has(ek)) throw new Error(`inventory: EK ${ek} appears twice`);
      eks.add(ek);
    }
  }
  return inventory.nodes;
}

// ---- owner proof: a JoinService shows it holds the owner key, on this channel, for this nonce -------------------

export const OWNER_NONCE_BYTES = 32;

function proofMessage(nonce: Uint8Array, serverSpkiDer: Uint8Array): Buffer {
  return createHash('sha256').update('sextant owner proof v1\0').update(nonce).update(serverSpkiDer).digest();
}

/** Signs the node's nonce together with the server's own TLS key, so the proof is useless on any other channel. */
export function proveOwner(seed: Uint8Array, nonce: Uint8Array, serverSpkiDer: Uint8Array): Buffer {
  return sign(null, proofMessage(nonce, serverSpkiDer), privateKeyOf(seed));
}

export function verifyOwnerProof(
  ownerPublicKey: KeyObject,
  nonce: Uint8Array,
  serverSpkiDer: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    return verify(null, proofMessage(nonce, serverSpkiDer), ownerPublicKey, signature);
  } catch {
    return false;
  }
}
