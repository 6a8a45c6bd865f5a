// Which node `init` talks to when the operator does not say: the first control plane the provider created.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatEndpoint } from '../../common/net.js';
import { providerDir } from '../provider/qemu/nodes.js';

export async function firstControlPlane(workspace: string, initPort: number): Promise<string> {
  const file = join(providerDir(workspace), 'cluster.json');
  let cluster: { nodes?: { role?: string; address?: string }[] };
  try {
    cluster = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'ENOENT'
        ? `no nodes in this workspace (${file} missing): run "sextant create" first, or pass --endpoint host:port`
        : `cannot read ${file}: ${(err as Error).message}`,
    );
  }
  const first = cluster.nodes?.find((n) => n.role === 'control-plane' && typeof n.address === 'string');
  if (!first?.address) throw new Error(`${file}: no control-plane node with an address`);
  return formatEndpoint({ host: first.address, port: initPort });
}
