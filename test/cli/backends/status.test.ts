// The live probes of `sextant status` without a node: the API's node list read as status needs it, the admin
// kubeconfig missing, a config that cannot make a verifier, and an address where no agent listens (real loopback).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createEphemeralIdentity } from '../../../attestation/atls/index.js';
import { REQUIRED_PCRS } from '../../../attestation/measurement-policy.js';
import type { Measurements } from '../../../attestation/measurements.js';
import { parseNodeList, statusProbes } from '../../../cli/backends/status.js';
import { createContext } from '../../../cli/commands/context.js';
import { saveConfig } from '../../../cli/config/file.js';
import { defaultQemuConfig } from '../../../cli/config/schema.js';

const strong: Measurements = Object.fromEntries(
  REQUIRED_PCRS.map((pcr) => [pcr, { expected: '00'.repeat(32), warnOnly: false }]),
);

describe('parseNodeList', () => {
  const cases: { name: string; body: unknown; want: ReturnType<typeof parseNodeList> | RegExp }[] = [
    {
      name: 'Ready only when the Ready condition is True; InternalIP addresses only',
      body: {
        kind: 'NodeList',
        items: [
          {
            metadata: { name: 'cp-0', uid: 'u' },
            status: {
              conditions: [
                { type: 'MemoryPressure', status: 'False' },
                { type: 'Ready', status: 'True' },
              ],
              addresses: [
                { type: 'Hostname', address: 'cp-0' },
                { type: 'InternalIP', address: '10.0.0.2' },
              ],
            },
          },
          { metadata: { name: 'w-0' }, status: { conditions: [{ type: 'Ready', status: 'Unknown' }] } },
          { metadata: { name: 'w-1' } },
        ],
      },
      want: [
        { name: 'cp-0', addresses: ['10.0.0.2'], ready: true },
        { name: 'w-0', addresses: [], ready: false },
        { name: 'w-1', addresses: [], ready: false },
      ],
    },
    { name: 'an empty list', body: { items: [] }, want: [] },
    { name: 'no items', body: { kind: 'Status' }, want: /items/ },
    {
      name: 'a node without a name',
      body: { items: [{ metadata: {} }] },
      want: /items\[0\]\.metadata\.name/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      if (c.want instanceof RegExp) assert.throws(() => parseNodeList(c.body), c.want);
      else assert.deepEqual(parseNodeList(c.body), c.want);
    });
  }
});

describe('statusProbes', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function workspace(measurements: Measurements, initPort: number): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'sextant-status-probes-'));
    dirs.push(dir);
    await writeFile(join(dir, 'ek-ca.pem'), (await createEphemeralIdentity('ek-ca')).certPem);
    const config = defaultQemuConfig();
    config.initPort = initPort;
    config.attestation = { ...config.attestation, measurements, ekCaCertificates: ['ek-ca.pem'] };
    await saveConfig(dir, config);
    return dir;
  }

  async function refusedPort(): Promise<number> {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const a = s.address();
    await new Promise((r) => s.close(r));
    return typeof a === 'object' && a ? a.port : 1;
  }

  it('nodes from qemu/cluster.json; none before create; a malformed file names the key', async () => {
    const dir = await workspace(strong, 9000);
    const probes = await statusProbes(createContext({ workspace: dir }), {});
    assert.deepEqual(await probes.nodes(), []);
    await mkdir(join(dir, 'qemu'));
    const node = { name: 'cp-0', role: 'control-plane', address: '10.1.0.2' };
    await writeFile(join(dir, 'qemu', 'cluster.json'), JSON.stringify({ nodes: [{ ...node, mac: 'm' }] }));
    assert.deepEqual(await probes.nodes(), [node]);
    await writeFile(
      join(dir, 'qemu', 'cluster.json'),
      JSON.stringify({ nodes: [{ ...node, role: 'boss' }] }),
    );
    await assert.rejects(
      probes.nodes(),
      /cluster\.json: nodes\[0\]\.role: expected one of control-plane, worker/,
    );
  });

  it('inline measurements without --insecure-measurements: every node refused, saying why', async () => {
    const dir = await workspace(strong, 9000);
    const probes = await statusProbes(createContext({ workspace: dir }), {});
    const a = await probes.attest('127.0.0.1');
    assert.equal(a.verified, false);
    assert.match(a.verified ? '' : a.reason, /attestation\.measurements: written inline, so unsigned/);
  });

  it('an address where no agent listens: "no Sextant agent", with INSECURE said once', async () => {
    const port = await refusedPort();
    const dir = await workspace(strong, port);
    let stderr = '';
    const ctx = createContext({ workspace: dir, stderr: { write: (s: string) => (stderr += s) } });
    const probes = await statusProbes(ctx, { insecureMeasurements: true });
    assert.match(stderr, /^INSECURE: the measurements written inline/);
    const a = await probes.attest('127.0.0.1');
    assert.equal(a.verified, false);
    assert.match(
      a.verified ? '' : a.reason,
      new RegExp(`^no Sextant agent at 127\\.0\\.0\\.1:${port} \\(nothing listens`),
    );
  });

  it('Kubernetes without the admin kubeconfig: an error naming the file', async () => {
    const dir = await workspace(strong, 9000);
    const probes = await statusProbes(createContext({ workspace: dir }), {});
    await assert.rejects(probes.kubernetesNodes(), /^Error: cannot read sextant-admin\.conf \(ENOENT\)$/);
  });
});
