import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { CallLimits } from '../../agent/joinservice/limits.js';
import { type JoinServiceParts, startJoinService } from '../../agent/main.js';
import {
  type ClusterSecrets,
  ClusterSecretsStore,
  serializeClusterSecrets,
} from '../../agent/state/cluster-secrets.js';
import { fetchServerCertificate } from '../../attestation/atls/client.js';
import { createTrust } from '../../attestation/ek-chain.js';
import { AttestationDocument, AttesterIdentity } from '../../gen/proto/attestation.js';
import { recordingLog } from '../harness/recording-log.js';
import { clusterCa, FakeKubeadm } from './fakes.js';

let dir: string;
let caPem: string;
let caKeyPem: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sextant-main-'));
  ({ certPem: caPem, keyPem: caKeyPem } = await clusterCa());
});
after(() => rm(dir, { recursive: true, force: true }));

/** A measurements file of the shape a release ships: every boot PCR enforced. */
const measurements = JSON.stringify({
  measurements: Object.fromEntries(
    [0, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14].map((i) => [
      i,
      { expected: 'ab'.repeat(32), warnOnly: false },
    ]),
  ),
});

function secrets(text = measurements): ClusterSecrets {
  return {
    masterSecret: { key: randomBytes(32), salt: randomBytes(32) },
    measurementSalt: randomBytes(32),
    measurements: text,
    kubernetesVersion: 'v1.31.2',
    components: [],
    apiServerEndpoint: '10.0.0.1:6443',
    clusterName: 'c',
  };
}

/** An admin.conf as kubeadm writes it: everything embedded (the CA stands in for the admin's certificate too). */
function adminConf(user: Record<string, string>): Buffer {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return Buffer.from(
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'c', cluster: { server: 'https://127.0.0.1:1', 'certificate-authority-data': b64(caPem) } },
      ],
      contexts: [{ name: 'kubernetes-admin@c', context: { cluster: 'c', user: 'kubernetes-admin' } }],
      'current-context': 'kubernetes-admin@c',
      users: [{ name: 'kubernetes-admin', user }],
    }),
  );
}

let seq = 0;
interface Setup {
  parts: JoinServiceParts;
  config: Parameters<typeof startJoinService>[1];
}

async function setup(
  withPki = true,
  admin = adminConf({ 'client-certificate-data': 'Y2VydA==', 'client-key-data': 'a2V5' }),
): Promise<Setup> {
  const node = join(dir, `node-${seq++}`);
  const stateDir = join(node, 'state');
  const rootfs = join(node, 'rootfs');
  if (withPki) {
    await mkdir(join(rootfs, 'etc/kubernetes/pki'), { recursive: true });
    await writeFile(join(rootfs, 'etc/kubernetes/pki/ca.crt'), caPem);
    await writeFile(join(rootfs, 'etc/kubernetes/pki/ca.key'), caKeyPem, { mode: 0o600 });
  }
  return {
    parts: {
      log: recordingLog(),
      trust: createTrust({ ekCaCertificates: [caPem] }),
      attester: {
        identity: async () => AttesterIdentity.fromPartial({}),
        attest: async () => AttestationDocument.fromPartial({}),
      },
      kubeadm: Object.assign(new FakeKubeadm(), { adminConf: admin }),
      secretsStore: new ClusterSecretsStore(stateDir),
      callLimits: new CallLimits({ burstPerPeer: 10 }),
      inventory: async () => undefined,
    },
    config: {
      stateDir,
      rootfs,
      variant: 'qemu-vtpm',
      listenAddress: '127.0.0.1',
      joinServicePort: 0,
      joinBurstPerPeer: 10,
      unlistedNodes: 'worker',
    },
  };
}

const start = (s: Setup, cs: ClusterSecrets) => startJoinService(s.parts, s.config, cs);

describe('startJoinService', () => {
  it('persists the secrets (0600) and measurements, listens on attested TLS, and closes', async () => {
    const s = await setup();
    const cs = secrets();
    const running = await start(s, cs);
    try {
      assert.ok(running.port > 0);
      assert.ok((await fetchServerCertificate({ host: '127.0.0.1', port: running.port })).length > 0);
      assert.equal(await readFile(s.parts.secretsStore.path, 'utf8'), serializeClusterSecrets(cs));
      assert.equal((await stat(s.parts.secretsStore.path)).mode & 0o777, 0o600);
      assert.equal(await readFile(join(s.config.stateDir, 'measurements.json'), 'utf8'), measurements);
    } finally {
      await running.close();
    }
    await assert.rejects(fetchServerCertificate({ host: '127.0.0.1', port: running.port }, 1000));
  });

  const refusals: {
    name: string;
    setup: () => Promise<Setup>;
    secrets: () => ClusterSecrets;
    error: RegExp;
  }[] = [
    {
      name: 'the cluster CA kubeadm should have made is missing',
      setup: () => setup(false),
      secrets: () => secrets(),
      error: /etc\/kubernetes\/pki\/ca\.crt/,
    },
    {
      name: 'the measurements do not parse',
      setup: () => setup(),
      secrets: () => secrets('{"no":"measurements"}'),
      error: /cluster secrets: measurements: expected a JSON object with a "measurements" field/,
    },
    {
      // no API access, no join tokens: refused at start, not at the first join
      name: 'the admin kubeconfig has no client key',
      setup: () => setup(true, adminConf({ 'client-certificate-data': 'Y2VydA==' })),
      secrets: () => secrets(),
      error: /admin kubeconfig: users\[0\]\.user\.client-key-data: missing/,
    },
  ];
  it('closes what it opened when its port is taken', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const s = await setup();
      s.config.joinServicePort = (taken.address() as AddressInfo).port;
      await assert.rejects(start(s, secrets()), /EADDRINUSE|address already in use|No address added/);
    } finally {
      taken.close();
    }
  });

  for (const r of refusals) {
    it(`refuses to start when ${r.name}`, async () => {
      await assert.rejects(start(await r.setup(), r.secrets()), r.error);
    });
  }
});
