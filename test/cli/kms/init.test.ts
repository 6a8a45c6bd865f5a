// @tier system: swtpm (an agent on loopback)
// kubeadm in this test is the stand-in (test/kubeadm): real PKI, config decoding and preflight, its own API server; no kubelet, no control-plane Pods.
// `sextant init` (its own process) against a real agent with swtpm, the master secret wrapped by a real OpenBao
// transit key or a SoftHSM key: the cluster comes up, the secret never lies unwrapped in the workspace, and
// revoked KMS access locks out the next command that needs it.
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig, saveConfig } from '../../../cli/config/file.js';
import { loadOrCreateMasterSecret } from '../../../cli/kms/master-secret.js';
import { parseKmsUri } from '../../../cli/kms/uri.js';
import { WRAPPED_MASTER_SECRET_FILE } from '../../../cli/kms/wrapped-file.js';
import { loadState } from '../../../cli/workspace/state.js';
import { deriveOwnerId } from '../../../common/keys.js';
import { runCliLocal } from '../../faults/tools/cli-process.js';
import { type AgentNode, startAgentNode, testCa } from '../../harness/agent-node.js';
import { filesOf } from '../../harness/cli.js';
import { kubeadmStandin } from '../../harness/cluster-kit.js';
import { type OpenBao, startOpenBao } from '../../harness/openbao.js';
import { freePort } from '../../harness/ports.js';
import { createSoftHsm, type SoftHsm } from '../../harness/softhsm.js';
import type { SwtpmCa } from '../../harness/swtpm.js';
import { writeLocalWorkspace } from '../../harness/workspace.js';

describe('init with the master secret in a KMS', { timeout: 600_000 }, () => {
  let ca: SwtpmCa;
  let root: string;
  let bao: OpenBao;
  let hsm: SoftHsm;
  const nodes: AgentNode[] = [];
  before(async () => {
    ca = await testCa();
    kubeadmStandin();
    root = await mkdtemp(join(tmpdir(), 'sextant-kms-init-'));
    bao = await startOpenBao();
    await bao.createKey('sextant');
    hsm = await createSoftHsm();
    await hsm.addKey('master', '01');
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    await bao?.stop();
    await hsm?.remove();
    await rm(root, { recursive: true, force: true });
  });

  const cases: {
    name: string;
    uri: () => string;
    /** The CLI's credentials, and how the test takes them away again. */
    access: () => Promise<{ env: NodeJS.ProcessEnv; revoke(): Promise<NodeJS.ProcessEnv> }>;
    locked: RegExp;
  }[] = [
    {
      name: 'OpenBao transit, a token allowed only encrypt/decrypt of the key',
      uri: () => bao.uri('sextant'),
      access: async () => {
        const token = await bao.keyToken('sextant');
        return {
          env: { BAO_TOKEN: token },
          revoke: async () => {
            await bao.revoke(token);
            return { BAO_TOKEN: token };
          },
        };
      },
      locked:
        /^sextant init: transit key "sextant" \(mount transit\) at http:\/\/127\.0\.0\.1:\d+: permission denied for decrypt/m,
    },
    {
      name: 'PKCS#11 (SoftHSM), PIN from a file the operator points at',
      uri: () => hsm.uri('master'),
      access: async () => {
        const pinFile = join(root, 'pin');
        await writeFile(pinFile, hsm.pin, { mode: 0o600 });
        return {
          env: { ...hsm.env, SEXTANT_PKCS11_PIN_FILE: pinFile },
          // the token is gone from this machine: what a copied workspace elsewhere meets
          revoke: async () => ({
            SOFTHSM2_CONF: join(root, 'no-such-softhsm2.conf'),
            SEXTANT_PKCS11_PIN_FILE: pinFile,
          }),
        };
      },
      locked:
        /^sextant init: PKCS#11 key "master" on token "sextant" \(.*\): (C_Initialize|no token with this label)/m,
    },
  ];

  for (const c of cases) {
    test(c.name, async () => {
      const dir = join(root, `ws-${cases.indexOf(c)}`);
      await mkdir(dir);
      const ws = await writeLocalWorkspace(dir, { ca });
      await saveConfig(dir, { ...(await loadConfig(dir)), kms: c.uri() });
      const node = await startAgentNode({ ca, initSecret: ws.initSecret });
      nodes.push(node);
      const access = await c.access();

      const r = await runCliLocal(dir, ['init', '--endpoint', `127.0.0.1:${node.initPort}`], access.env);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stderr,
        /created the master secret \((transit key "sextant"|PKCS#11 key "master").*key version (1|01)\)/,
      );
      const files = await readdir(dir);
      assert.ok(files.includes(WRAPPED_MASTER_SECRET_FILE), 'wrapped secret kept');
      assert.ok(!files.includes('sextant-mastersecret.json'), 'never unwrapped in the workspace');
      for (const [name, value] of Object.entries(access.env)) {
        if (name.endsWith('TOKEN'))
          assert.ok(!r.stderr.includes(value as string), 'the token is never printed');
      }

      // the cluster's owner ID derives from the secret the KMS unwraps
      const state = await loadState(dir);
      const saved = process.env.SOFTHSM2_CONF;
      process.env.SOFTHSM2_CONF = hsm.env.SOFTHSM2_CONF;
      try {
        const { secret } = await loadOrCreateMasterSecret(dir, parseKmsUri(c.uri()), access.env);
        assert.ok(state?.ownerId.equals(deriveOwnerId(secret)), 'owner ID from the unwrapped secret');
      } finally {
        if (saved === undefined) delete process.env.SOFTHSM2_CONF;
        else process.env.SOFTHSM2_CONF = saved;
      }

      // a copy of the workspace with no credentials: useless
      const copy = join(root, `copy-${cases.indexOf(c)}`);
      await cp(dir, copy, { recursive: true });
      const stolen = await runCliLocal(
        copy,
        ['init', '--force', '--endpoint', `127.0.0.1:${node.initPort}`],
        {},
      );
      assert.equal(stolen.code, 1);
      assert.match(stolen.stderr, /no (KMS token|PKCS#11 PIN)/);

      // access revoked: the next command that needs the secret is locked out, naming the KMS and the key
      const revoked = await access.revoke();
      const again = await runCliLocal(
        dir,
        ['init', '--force', '--endpoint', `127.0.0.1:${node.initPort}`],
        revoked,
      );
      assert.equal(again.code, 1);
      assert.match(again.stderr, c.locked);
      const rotate = await runCliLocal(dir, ['kms', 'rotate'], revoked);
      assert.equal(rotate.code, 1);
      assert.match(rotate.stderr, /^sextant kms rotate: (transit key "sextant"|PKCS#11 key "master")/m);
      assert.equal(again.stderr.split('\n').filter((l) => l.startsWith('sextant init:')).length, 1);
    });
  }

  /** A TCP relay to `port` that counts the connections made through it: whether the CLI contacted the node. */
  async function countingRelay(
    port: number,
  ): Promise<{ port: number; connections(): number; close(): void }> {
    let connections = 0;
    const server: Server = createServer((socket) => {
      connections++;
      const upstream = createConnection(port, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const address = server.address();
    if (typeof address !== 'object' || !address) throw new Error('no relay port');
    return { port: address.port, connections: () => connections, close: () => server.close() };
  }

  test('a KMS that says no costs the cluster nothing: init asks it before contacting the node', async () => {
    const dir = join(root, 'ws-fail-fast');
    await mkdir(dir);
    const ws = await writeLocalWorkspace(dir, { ca });
    const node = await startAgentNode({ ca, initSecret: ws.initSecret });
    nodes.push(node);
    const relay = await countingRelay(node.initPort);
    try {
      const endpoint = ['--endpoint', `127.0.0.1:${relay.port}`];
      const token = await bao.keyToken('sextant');
      const refusals: { name: string; kms: string; env: NodeJS.ProcessEnv; error: RegExp }[] = [
        {
          name: 'unreachable',
          kms: `transit+http://127.0.0.1:${await freePort()}/transit/sextant`,
          env: { BAO_TOKEN: token },
          error: /^sextant init: transit key "sextant" .*: unreachable \(ECONNREFUSED\); start the server/m,
        },
        {
          name: 'a token that may encrypt but not decrypt (the new secret would not unwrap)',
          kms: bao.uri('sextant'),
          env: { BAO_TOKEN: await bao.keyToken('sextant', ['encrypt']) },
          error: /^sextant init: transit key "sextant" .*: permission denied for decrypt/m,
        },
        {
          name: 'no token',
          kms: bao.uri('sextant'),
          env: {},
          error: /^sextant init: transit key "sextant" .*: no KMS token: set BAO_TOKEN/m,
        },
      ];
      for (const c of refusals) {
        await saveConfig(dir, { ...(await loadConfig(dir)), kms: c.kms });
        const before = await filesOf(dir);
        const r = await runCliLocal(dir, ['init', ...endpoint], c.env);
        assert.equal(r.code, 1, `${c.name}: ${r.stderr}`);
        assert.match(r.stderr, c.error, c.name);
        assert.equal(relay.connections(), 0, `${c.name}: the node was not contacted`);
        assert.deepEqual(await filesOf(dir), before, `${c.name}: the workspace is as it was`);
      }
      // the same relay sees the init once the KMS answers: the zero above is the CLI's choice, not the relay's
      const ok = await runCliLocal(dir, ['init', ...endpoint], { BAO_TOKEN: token });
      assert.equal(ok.code, 0, ok.stderr);
      assert.ok(relay.connections() > 0);
      assert.ok((await readdir(dir)).includes(WRAPPED_MASTER_SECRET_FILE));
    } finally {
      relay.close();
    }
  });
});
