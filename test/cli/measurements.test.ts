// @tier system: swtpm (agents on loopback)
// kubeadm in this test is the stand-in (test/kubeadm): real PKI, config decoding and preflight, its own API server; no kubelet, no control-plane Pods.
// The operator's measurements: signed by the image build's release key, pinned by `config generate`, verified on
// every use, and never weaker than the boot chain unless --insecure-measurements says so aloud. `verify` against a
// real agent with its own swtpm.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Measurements } from '../../attestation/measurements.js';
import {
  formatMeasurementsFile,
  releaseKeyFingerprint,
  signMeasurements,
} from '../../attestation/measurements.js';
import { loadConfig, saveConfig } from '../../cli/config/file.js';
import { type AgentNode, startAgentNode } from '../harness/agent-node.js';
import { runCliInProcess } from '../harness/cli.js';
import { measurementsFile, swtpmMeasurements } from '../harness/cluster-kit.js';
import { createSwtpmCa, removeSwtpmCa, type SwtpmCa } from '../harness/swtpm.js';
import { tempDir } from '../harness/temp-dir.js';
import { writeLocalWorkspace } from '../harness/workspace.js';

const sextant = (args: string[]) => runCliInProcess(args);
/** `sextant config generate qemu` of the image's measurements file into workspace `ws`. */
const generate = (ws: string, file: string, options: { force?: boolean } = {}) =>
  sextant([
    'config',
    'generate',
    'qemu',
    ...(options.force ? ['--force'] : []),
    '--measurements',
    file,
    '--workspace',
    ws,
  ]);

/** An image dir as the build leaves it: measurements.json, its .sig and the release public key beside it. */
async function imageDir(
  m: Measurements,
  sign = true,
  release: { version: string; serial: number } = { version: 'img-1', serial: 1 },
  key = generateKeyPairSync('ed25519'),
): Promise<{ dir: string; key: ReturnType<typeof generateKeyPairSync> }> {
  const dir = tempDir('sextant-image-');
  const bytes = Buffer.from(formatMeasurementsFile(m, release));
  await writeFile(join(dir, 'measurements.json'), bytes);
  if (sign) await writeFile(join(dir, 'measurements.json.sig'), signMeasurements(bytes, key.privateKey));
  await writeFile(join(dir, 'measurements.pub.pem'), key.publicKey.export({ type: 'spki', format: 'pem' }));
  return { dir, key };
}

describe('config generate pins the release key', () => {
  it('verifies the signed file, copies file + signature + key into the workspace and points the config at them', async () => {
    const image = await imageDir(swtpmMeasurements());
    const ws = tempDir('sextant-ws-');
    const r = await generate(ws, join(image.dir, 'measurements.json'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /pinned measurements of image version img-1, serial 1\n/);
    assert.match(r.stderr, /pinned measurements release key sha256:[0-9a-f]{64}/);
    const config = await loadConfig(ws);
    assert.equal(config.attestation.measurementsSerial, 1);
    assert.equal(config.attestation.measurementsKeyFingerprint, releaseKeyFingerprint(image.key.publicKey));
    assert.equal(config.attestation.measurements, undefined, 'no unsigned inline copy');
    assert.equal(config.attestation.measurementsFile, 'sextant-measurements.json');
    assert.equal(config.attestation.measurementsSignature, 'sextant-measurements.json.sig');
    assert.equal(config.attestation.measurementsPublicKey, 'sextant-measurements-key.pem');
    assert.deepEqual(
      await readFile(join(ws, 'sextant-measurements.json')),
      await readFile(join(image.dir, 'measurements.json')),
    );
  });

  const refused: Array<{
    name: string;
    prepare: (dir: string) => Promise<void>;
    sign?: boolean;
    m?: Measurements;
    message: RegExp;
  }> = [
    { name: 'an unsigned file', sign: false, prepare: async () => {}, message: /measurements\.json\.sig/ },
    {
      name: 'a file altered after signing',
      prepare: async (dir) => {
        const f = join(dir, 'measurements.json');
        await writeFile(f, (await readFile(f, 'utf8')).replace('"expected": "00', '"expected": "01'));
      },
      message: /signature does not verify/,
    },
    {
      name: 'a file signed by another key than the given release key',
      prepare: async (dir) => {
        await writeFile(
          join(dir, 'measurements.pub.pem'),
          generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }),
        );
      },
      message: /signature does not verify/,
    },
    {
      name: 'a signed set where every PCR is warnOnly',
      m: Object.fromEntries(
        Object.entries(swtpmMeasurements()).map(([k, v]) => [k, { ...v, warnOnly: true }]),
      ),
      prepare: async () => {},
      message: /weaker than the minimum enforced set/,
    },
  ];
  for (const c of refused) {
    it(`refuses ${c.name} and writes no config`, async () => {
      const image = await imageDir(c.m ?? swtpmMeasurements(), c.sign ?? true);
      await c.prepare(image.dir);
      const ws = tempDir('sextant-ws-');
      const r = await generate(ws, join(image.dir, 'measurements.json'));
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, c.message);
      await assert.rejects(readFile(join(ws, 'sextant-conf.yaml')));
    });
  }
});

describe('config generate: no downgrade of the pinned measurements', () => {
  it('a --force with an older document of the same release key is refused, naming the pinned field; the pin stays', async () => {
    const key = generateKeyPairSync('ed25519');
    const v2 = await imageDir(swtpmMeasurements(), true, { version: 'img-2', serial: 2 }, key);
    const v1 = await imageDir(swtpmMeasurements(), true, { version: 'img-1', serial: 1 }, key);
    const ws = tempDir('sextant-ws-');
    const first = await generate(ws, join(v2.dir, 'measurements.json'));
    assert.equal(first.code, 0, first.stderr);
    const older = await generate(ws, join(v1.dir, 'measurements.json'), { force: true });
    assert.equal(older.code, 2, older.stderr);
    assert.match(
      older.stderr,
      /serial 1 \(version img-1\) is older than the serial 2 sextant-conf\.yaml pins \(attestation\.measurementsSerial\)/,
    );
    assert.equal((await loadConfig(ws)).attestation.measurementsSerial, 2);
    // a newer one moves the pin up
    const v3 = await imageDir(swtpmMeasurements(), true, { version: 'img-3', serial: 3 }, key);
    const newer = await generate(ws, join(v3.dir, 'measurements.json'), { force: true });
    assert.equal(newer.code, 0, newer.stderr);
    assert.match(newer.stderr, /image version img-3, serial 3/);
    assert.equal((await loadConfig(ws)).attestation.measurementsSerial, 3);
  });

  it('every later command refuses the older signed copy swapped into the workspace', async () => {
    const key = generateKeyPairSync('ed25519');
    const v2 = await imageDir(swtpmMeasurements(), true, { version: 'img-2', serial: 2 }, key);
    const v1 = await imageDir(swtpmMeasurements(), true, { version: 'img-1', serial: 1 }, key);
    const ws = tempDir('sextant-ws-');
    assert.equal((await generate(ws, join(v2.dir, 'measurements.json'))).code, 0);
    for (const f of ['measurements.json', 'measurements.json.sig']) {
      await writeFile(join(ws, `sextant-${f}`), await readFile(join(v1.dir, f)));
    }
    const r = await sextant(['verify', '--endpoint', '127.0.0.1:1', '--workspace', ws]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /attestation\.measurementsSerial: sextant-measurements\.json is serial 1 \(version img-1\), older than the pinned serial 2/,
    );
  });
});

describe('sextant verify: signed, minimum measurements only', { timeout: 120_000 }, () => {
  let ca: SwtpmCa;
  let node: AgentNode;
  before(async () => {
    ca = await createSwtpmCa();
    // every verify below attests from 127.0.0.1: more calls than the per-address burst lets through
    node = await startAgentNode({ ca, env: { SEXTANT_JOIN_BURST_PER_PEER: '100' } });
  });
  after(async () => {
    await node?.stop();
    removeSwtpmCa(ca);
  });

  const verify = (ws: string, ...extra: string[]) =>
    sextant(['verify', '--endpoint', `127.0.0.1:${node.initPort}`, '--workspace', ws, ...extra]);

  it('verifies a node against signed measurements that match it', async () => {
    const ws = tempDir('sextant-ws-');
    await writeLocalWorkspace(ws, { ca });
    const r = await verify(ws);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^verified: /);
    assert.match(r.stdout, /\nEK public key SHA-256: [0-9a-f]{64}\n/);
  });

  it('a node whose every PCR is wrong, against an all-warnOnly set: never "verified"', async () => {
    const ws = tempDir('sextant-ws-');
    const wrong: Measurements = {};
    for (let i = 0; i < 15; i++) wrong[i] = { expected: 'ee'.repeat(32), warnOnly: true };
    await writeLocalWorkspace(ws, { ca, measurements: wrong });
    const r = await verify(ws);
    assert.equal(r.code, 1);
    assert.doesNotMatch(r.stdout, /verified/);
    assert.match(r.stderr, /not verified: .*weaker than the minimum enforced set.*PCR 0 is warnOnly/);
    const insecure = await verify(ws, '--insecure-measurements');
    assert.equal(insecure.code, 1);
    assert.doesNotMatch(insecure.stdout, /verified/);
    assert.match(insecure.stderr, /INSECURE: .*PCR 4 is warnOnly/);
    assert.match(
      insecure.stderr,
      /not verified: .*boot-chain PCR\(s\) 0, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14 differ/,
    );
  });

  it('an unsigned measurements file is refused; --insecure-measurements uses it and says so', async () => {
    const ws = tempDir('sextant-ws-');
    await writeLocalWorkspace(ws, { ca });
    const config = await loadConfig(ws);
    delete config.attestation.measurementsPublicKey;
    delete config.attestation.measurementsSignature;
    delete config.attestation.measurementsKeyFingerprint;
    delete config.attestation.measurementsSerial;
    await saveConfig(ws, config);
    const r = await verify(ws);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not verified: .*measurementsPublicKey.*missing/);
    const insecure = await verify(ws, '--insecure-measurements');
    assert.equal(insecure.code, 0, insecure.stderr);
    assert.match(insecure.stderr, /INSECURE: measurements\.json is used without a signature check/);
  });

  it('verify -o json and status: the same attestation, as JSON and as a row of the workspace', async () => {
    const ws = tempDir('sextant-ws-');
    await writeLocalWorkspace(ws, { ca });
    const json = await verify(ws, '-o', 'json');
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout) as {
      verified: boolean;
      endpoint: string;
      pcrs: Record<string, string>;
    };
    assert.equal(report.verified, true);
    assert.equal(report.endpoint, `127.0.0.1:${node.initPort}`);
    assert.deepEqual(Object.keys(report.pcrs).map(Number), [...Array(24).keys()]);
    // the workspace's one node, as the provider lists it, at the agent's port
    const config = await loadConfig(ws);
    config.initPort = node.initPort;
    await saveConfig(ws, config);
    await mkdir(join(ws, 'qemu'));
    await writeFile(
      join(ws, 'qemu', 'cluster.json'),
      JSON.stringify({ nodes: [{ name: 'cp-0', role: 'control-plane', address: '127.0.0.1' }] }),
    );
    const status = await sextant(['status', '-o', 'json', '--workspace', ws]);
    assert.equal(status.code, 0, status.stderr);
    const rows = (JSON.parse(status.stdout) as { nodes: Record<string, unknown>[] }).nodes;
    assert.deepEqual(rows, [
      {
        name: 'cp-0',
        role: 'control-plane',
        address: '127.0.0.1',
        attested: true,
        attestation: 'boot chain verified; PCR 15 not checked (the cluster is not initialized)',
        imageVersion: 'harness',
        kubernetes: 'unknown',
      },
    ]);
  });

  it('measurements written inline are unsigned: refused; --insecure-measurements uses them and says so', async () => {
    const ws = tempDir('sextant-ws-');
    await writeLocalWorkspace(ws, { ca });
    const config = await loadConfig(ws);
    const { measurementsFile: _file, measurementsSignature: _sig, ...rest } = config.attestation;
    delete rest.measurementsPublicKey;
    delete rest.measurementsKeyFingerprint;
    delete rest.measurementsSerial;
    config.attestation = { ...rest, measurements: swtpmMeasurements() };
    await saveConfig(ws, config);
    const r = await verify(ws);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /not verified: .*attestation\.measurements: written inline, so unsigned: .*must be signed/,
    );
    const insecure = await verify(ws, '--insecure-measurements');
    assert.equal(insecure.code, 0, insecure.stderr);
    assert.match(
      insecure.stderr,
      /INSECURE: the measurements written inline in sextant-conf\.yaml are unsigned/,
    );
  });

  it('a measurements file edited after it was pinned is refused before use', async () => {
    const ws = tempDir('sextant-ws-');
    await writeLocalWorkspace(ws, { ca });
    const wrong = swtpmMeasurements({ 4: { expected: 'ee'.repeat(32), warnOnly: true } });
    await writeFile(join(ws, 'measurements.json'), measurementsFile(wrong));
    const r = await verify(ws);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /signature does not verify/);
  });
});
