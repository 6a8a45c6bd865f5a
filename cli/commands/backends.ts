// The parts other components implement and the commands call: init and verify (cli/init), node providers
// (cli/provider/*). Narrow on purpose, so each side can be built and tested alone; cli/backends/ holds the real
// ones and cli/main.ts wires them.
import type { NodeRole } from '../../common/contracts/node-role.js';
import type { SextantConfig } from '../config/schema.js';
import type { CommandContext } from './context.js';
import type { OutputFormat } from './output.js';

export interface InitOptions {
  /** Init even though the workspace already holds an initialized cluster. */
  force: boolean;
  /** The first node's init service, host:port; default: the first control plane from the provider. */
  endpoint?: string;
  /** Bound on reaching the node and on the whole init, in seconds. */
  timeoutSeconds?: number;
}

/**
 * `sextant init`, after the command has validated its options, loaded the config and checked the workspace is not
 * initialized (unless force). Writes sextant-mastersecret.json, sextant-admin.conf and sextant-state.yaml through
 * cli/workspace. Returns the exit code.
 */
export type InitRunner = (ctx: CommandContext, options: InitOptions) => Promise<number>;

export interface VerifyOptions {
  /** host:port of a node's init/attestation service; absent: the workspace's first control plane. */
  endpoint?: string;
  /** Accept unsigned or weaker-than-minimum measurements, each weakness printed INSECURE. */
  insecureMeasurements?: boolean;
  /** How the verdict is printed (default text). */
  output?: OutputFormat;
}

/** `sextant verify`: attests one node against the config's measurements and prints what it found. */
export type VerifyRunner = (ctx: CommandContext, options: VerifyOptions) => Promise<number>;

export interface ProviderNodeSpec {
  name: string;
  role: NodeRole;
}

/** What `sextant create` asks a provider for: derived from sextant-conf.yaml and the workspace's init secret. */
export interface CreateSpec {
  config: SextantConfig;
  /** Resolved image directory (config "auto" already resolved). */
  imageDir: string;
  nodes: ProviderNodeSpec[];
  /** SHA-256 hex of the workspace's init secret; the nodes get it as instance metadata. */
  initSecretHash: string;
  /** The owner-key seed derived from the init secret: the operator commitment and the inventory's signer. */
  ownerSeed: Buffer;
  /** The serial the inventory is signed with: above every inventory this workspace signed before. */
  inventorySerial: number;
  onProgress: (message: string) => void;
}

export interface CreatedNode {
  name: string;
  role: NodeRole;
  address: string;
  /** Where the node's console goes, for error messages. */
  consoleLog?: string;
}

export interface NodeProvider {
  /** Boots every node; artifacts go into a subdirectory of the workspace. Fails if a cluster is already there. */
  createNodes(workspaceDir: string, spec: CreateSpec): Promise<{ nodes: CreatedNode[] }>;
  /** Stops and removes everything createNodes made; harmless when there is nothing. */
  terminateNodes(workspaceDir: string, onProgress: (message: string) => void): Promise<void>;
}

/** A node of the workspace as its provider created it. */
export interface WorkspaceNode {
  name: string;
  role: NodeRole;
  address: string;
}

/** What one node's attestation showed `sextant status`. */
export type NodeAttestation =
  | {
      verified: true;
      /** PCR 15 as quoted: the extend of the cluster ID once the node took part in init or a join. */
      pcr15: Buffer;
      /** The image version the signed measurements it matched name; absent for unsigned measurements. */
      imageVersion?: string;
    }
  | { verified: false; reason: string };

/** A node as the Kubernetes API lists it. */
export interface KubernetesNode {
  name: string;
  /** Its InternalIP addresses. */
  addresses: string[];
  ready: boolean;
}

/** What `sextant status` asks about the workspace's nodes; tests pass fakes. */
export interface StatusProbes {
  /** Every node of the workspace, in the provider's order; none before `create`. */
  nodes(): Promise<WorkspaceNode[]>;
  /** Attests one node (its address) over the path `verify` takes. */
  attest(address: string): Promise<NodeAttestation>;
  /** GET /api/v1/nodes with the workspace's admin kubeconfig; throws when the API cannot be asked. */
  kubernetesNodes(): Promise<KubernetesNode[]>;
}

export interface StatusOptions {
  /** Accept unsigned or weaker-than-minimum measurements, each weakness printed INSECURE. */
  insecureMeasurements?: boolean;
}

/** Everything the commands call outside cli/config and cli/workspace. */
export interface Backends {
  runInit: InitRunner;
  runVerify: VerifyRunner;
  statusProbes(ctx: CommandContext, options: StatusOptions): Promise<StatusProbes>;
  provider(name: 'qemu'): Promise<NodeProvider>;
}
