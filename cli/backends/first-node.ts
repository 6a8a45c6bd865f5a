// The nodes of a workspace as the provider created them (<workspace>/qemu/cluster.json), and which one `init` and
// `verify` talk to when the operator does not say: the first control plane.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as v from 'valibot';
import { nodeRoleSchema } from '../../common/contracts/node-role.js';
import { formatEndpoint } from '../../common/net.js';
import { parseWith } from '../../common/schema.js';
import type { WorkspaceNode } from '../commands/backends.js';
import { providerDir } from '../provider/qemu/nodes.js';

// Only what the CLI reads; the provider keeps more there (MACs, directories, the network).
const clusterSchema = v.object({
  nodes: v.array(
    v.object({
      name: v.string('expected a string'),
      role: nodeRoleSchema,
      address: v.string('expected a string'),
    }),
    'expected a list',
  ),
});

class NoNodesError extends Error {
  override name = 'NoNodesError';
}

async function readCluster(workspace: string): Promise<WorkspaceNode[]> {
  const file = join(providerDir(workspace), 'cluster.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NoNodesError(`no nodes in this workspace (${file} missing)`);
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return parseWith(clusterSchema, JSON.parse(text)).nodes;
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
}

/** Every node the provider created for the workspace, in its order; none before `sextant create`. */
export async function workspaceNodes(workspace: string): Promise<WorkspaceNode[]> {
  try {
    return await readCluster(workspace);
  } catch (err) {
    if (err instanceof NoNodesError) return [];
    throw err;
  }
}

export async function firstControlPlane(workspace: string, initPort: number): Promise<string> {
  let nodes: WorkspaceNode[];
  try {
    nodes = await readCluster(workspace);
  } catch (err) {
    if (err instanceof NoNodesError)
      throw new Error(`${err.message}: run "sextant create" first, or pass --endpoint host:port`);
    throw err;
  }
  const first = nodes.find((n) => n.role === 'control-plane');
  if (!first)
    throw new Error(`${join(providerDir(workspace), 'cluster.json')}: no control-plane node with an address`);
  return formatEndpoint({ host: first.address, port: initPort });
}
