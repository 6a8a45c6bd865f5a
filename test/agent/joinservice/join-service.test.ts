// The JoinService's request handling in-process, through its public methods (what the gRPC handlers call):
// field checks, the single-use challenge of a connection, attestation refusals, admissions keyed by AK with the
// disk they were admitted with, and what a ticket carries for a worker and for a control plane.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { randomBytes, webcrypto } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { createKubeletCsr } from '../../../agent/joinclient/kubelet-csr.js';
import { AdmissionRegistry } from '../../../agent/joinservice/admissions.js';
import { AuditLog } from '../../../agent/joinservice/audit-log.js';
import { JoinService } from '../../../agent/joinservice/join-service.js';
import { KubeletCertificateSigner } from '../../../agent/joinservice/kubelet-certificate.js';
import { MeasurementsSource } from '../../../agent/joinservice/measurements-source.js';
import { CLUSTER_SECRETS_TICKET_PATH, type ClusterSecrets } from '../../../agent/state/cluster-secrets.js';
import {
  createEphemeralIdentity,
  type PeerVerifier,
  type VerifiedAttestation,
} from '../../../attestation/atls/index.js';
import { deriveDiskKey, deriveMeasurementSecret } from '../../../common/keys.js';
import { AttestationDocument, AttesterIdentity, Challenge } from '../../../gen/proto/attestation.js';
import type { IssueJoinTicketRequest } from '../../../gen/proto/join.js';
import { recordingLog } from '../../harness/recording-log.js';
import { FakeKubeadm } from '../fakes.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

async function clusterCa(): Promise<{ certPem: string; keyPem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=kubernetes',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8
    .toString('base64')
    .match(/.{1,64}/g)
    ?.join('\n')}\n-----END PRIVATE KEY-----\n`;
  return { certPem: cert.toString('pem'), keyPem };
}

const DISK = '3b0b8c2e-2c2a-4a0e-9f7e-0d7b1b6f0a11';

/** What the fake verifier says about the next document: who attested, or why it is refused. */
let verdict: VerifiedAttestation | Error;
function attested(ak: number, ek: number): VerifiedAttestation {
  // `as`: newer verifiers report more about the EK than this table needs.
  return {
    pcrs: new Map([[15, Buffer.alloc(32)]]),
    warnings: [],
    akName: Buffer.alloc(34, ak),
    ekCertificateHash: Buffer.alloc(32, ek),
    ekPublicHash: Buffer.alloc(32, ek),
  } as VerifiedAttestation;
}
const fakeVerifier: PeerVerifier = {
  challenge: async (identity) => {
    if (identity.ekCertificate?.length === 1)
      throw new Error('EK certificate does not chain to a trusted CA');
    return {
      challenge: Challenge.fromPartial({ nonce: randomBytes(32) }),
      verify: async () => {
        if (verdict instanceof Error) throw verdict;
        return verdict;
      },
    };
  },
};

let dir: string;
let signer: KubeletCertificateSigner;
let secrets: ClusterSecrets;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sextant-join-service-'));
  const ca = await clusterCa();
  signer = await KubeletCertificateSigner.fromPem(ca.certPem, ca.keyPem);
  secrets = {
    masterSecret: { key: randomBytes(32), salt: randomBytes(32) },
    measurementSalt: randomBytes(32),
    measurements: '{}',
    kubernetesVersion: 'v1.31.2',
    components: [
      {
        url: 'http://x/kubeadm',
        sha256: 'ab'.repeat(32),
        installPath: '/usr/local/bin/kubeadm',
        extract: false,
      },
    ],
    apiServerEndpoint: '10.0.0.1:6443',
    clusterName: 'c',
  };
});
after(() => rm(dir, { recursive: true, force: true }));

let seq = 0;
async function service(): Promise<{
  js: JoinService;
  kubeadm: FakeKubeadm;
  log: ReturnType<typeof recordingLog>;
}> {
  const d = join(dir, `svc-${seq++}`);
  const log = recordingLog();
  const kubeadm = new FakeKubeadm();
  const admissions = await AdmissionRegistry.open(d);
  const js = new JoinService({
    log,
    identity: await createEphemeralIdentity(),
    attester: {
      identity: async () => AttesterIdentity.fromPartial({}),
      attest: async () => AttestationDocument.fromPartial({}),
    },
    measurements: new MeasurementsSource(join(d, 'measurements.json'), '{}', () => fakeVerifier, log),
    secrets,
    kubeadm,
    signer,
    caCertHash: `sha256:${'cd'.repeat(32)}`,
    admissions,
    audit: await AuditLog.open(d),
    clusterSecretsFile: () => Buffer.from('the cluster secrets file'),
  });
  return { js, kubeadm, log };
}

const PEER = 'ipv4:10.0.0.7:41000';
const identity = AttesterIdentity.fromPartial({ ekCertificate: Buffer.alloc(64, 1) });
const doc = AttestationDocument.fromPartial({});

async function joinRequest(
  overrides: Partial<IssueJoinTicketRequest> = {},
  name = 'w-0',
): Promise<IssueJoinTicketRequest> {
  return {
    attestation: doc,
    diskUuid: DISK,
    certificateRequest: (await createKubeletCsr(name, '10.0.0.7')).csrDer,
    isControlPlane: false,
    nodeName: name,
    ...overrides,
  };
}

function refusedWith(code: grpc.status, message: RegExp) {
  return (err: Error & { code?: grpc.status }) => {
    assert.equal(err.code, code, `${err.message}: code ${err.code}, expected ${code}`);
    assert.match(err.message, message);
    return true;
  };
}

describe('JoinService: challenge', () => {
  it('issues a challenge for an identity, and refuses one without', async () => {
    const { js } = await service();
    assert.ok((await js.challenge({ identity }, PEER)).nonce.length > 0);
    await assert.rejects(
      js.challenge({ identity: undefined }, PEER),
      refusedWith(grpc.status.INVALID_ARGUMENT, /identity: required/),
    );
  });

  it('refuses an identity the measurements verifier refuses (EK chain)', async () => {
    const { js } = await service();
    await assert.rejects(
      js.challenge({ identity: AttesterIdentity.fromPartial({ ekCertificate: Buffer.alloc(1) }) }, PEER),
      refusedWith(grpc.status.PERMISSION_DENIED, /does not chain/),
    );
  });
});

describe('JoinService: issueJoinTicket refusals', () => {
  const cases: {
    name: string;
    req: () => Promise<IssueJoinTicketRequest>;
    challenge?: boolean;
    verdict?: VerifiedAttestation | Error;
    code: grpc.status;
    error: RegExp;
  }[] = [
    {
      name: 'a node name that is no DNS subdomain',
      req: () => joinRequest({ nodeName: 'W_0' }),
      code: grpc.status.INVALID_ARGUMENT,
      error: /node_name: expected a DNS subdomain/,
    },
    {
      name: 'a disk UUID that is no UUID',
      req: () => joinRequest({ diskUuid: 'disk-1' }),
      code: grpc.status.INVALID_ARGUMENT,
      error: /disk_uuid: expected a lowercase UUID/,
    },
    {
      name: 'no challenge asked on this connection',
      req: () => joinRequest(),
      challenge: false,
      code: grpc.status.FAILED_PRECONDITION,
      error: /no outstanding challenge/,
    },
    {
      name: 'no attestation',
      req: () => joinRequest({ attestation: undefined }),
      code: grpc.status.INVALID_ARGUMENT,
      error: /attestation: required/,
    },
    {
      name: 'an attestation the verifier refuses',
      req: () => joinRequest(),
      verdict: new Error('PCR 4: expected aa…, got bb…'),
      code: grpc.status.PERMISSION_DENIED,
      error: /PCR 4: expected/,
    },
    {
      name: 'a CSR that is not DER',
      req: () => joinRequest({ certificateRequest: Buffer.from('nope') }),
      code: grpc.status.INVALID_ARGUMENT,
      error: /certificate_request: not a DER PKCS#10 request/,
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.name}, admitting nobody and making no token`, async () => {
      const { js, kubeadm, log } = await service();
      verdict = c.verdict ?? attested(1, 1);
      if (c.challenge !== false) await js.challenge({ identity }, PEER);
      await assert.rejects(js.issueJoinTicket(await c.req(), PEER), refusedWith(c.code, c.error));
      assert.deepEqual(kubeadm.calls, []);
      assert.ok(!log.lines.some((l) => l.includes(secrets.masterSecret.key.toString('hex'))));
    });
  }

  it('spends a challenge on the first ticket request: a replay on the same connection is refused', async () => {
    const { js } = await service();
    verdict = new Error('quote does not verify');
    await js.challenge({ identity }, PEER);
    await assert.rejects(
      js.issueJoinTicket(await joinRequest(), PEER),
      refusedWith(grpc.status.PERMISSION_DENIED, /quote/),
    );
    verdict = attested(1, 1);
    await assert.rejects(
      js.issueJoinTicket(await joinRequest(), PEER),
      refusedWith(grpc.status.FAILED_PRECONDITION, /no outstanding challenge/),
    );
  });

  it('keeps challenges apart per connection: one asked on another peer does not count', async () => {
    const { js } = await service();
    verdict = attested(1, 1);
    await js.challenge({ identity }, 'ipv4:10.0.0.8:5000');
    await assert.rejects(
      js.issueJoinTicket(await joinRequest(), PEER),
      refusedWith(grpc.status.FAILED_PRECONDITION, /no outstanding challenge/),
    );
  });
});

describe('JoinService: issueJoinTicket admissions', () => {
  it('a worker gets a token, its kubelet certificate and the disk key of the disk it named; no control-plane files', async () => {
    const { js, kubeadm } = await service();
    verdict = attested(4, 5);
    await js.challenge({ identity }, PEER);
    const ticket = await js.issueJoinTicket(await joinRequest(), PEER);
    assert.deepEqual(kubeadm.calls, ['token']);
    assert.equal(ticket.token, 'abcdef.0123456789abcdef');
    assert.equal(ticket.certificateKey, '');
    assert.deepEqual(ticket.controlPlaneFiles, []);
    assert.deepEqual(ticket.stateDiskKey, deriveDiskKey(secrets.masterSecret, DISK));
    assert.deepEqual(ticket.measurementSecret, deriveMeasurementSecret(secrets.masterSecret));
    assert.deepEqual(ticket.measurementSalt, secrets.measurementSalt);
    assert.equal(ticket.apiServerEndpoint, '10.0.0.1:6443');
    assert.deepEqual(ticket.caCert, signer.caCertDer);
    assert.ok(ticket.kubeletCert.length > 0);
  });

  it('a control plane also gets the certificate key and the cluster secrets file', async () => {
    const { js, kubeadm } = await service();
    verdict = attested(6, 6);
    await js.challenge({ identity }, PEER);
    const ticket = await js.issueJoinTicket(await joinRequest({ isControlPlane: true }, 'cp-1'), PEER);
    assert.deepEqual(kubeadm.calls, ['token', 'upload-certs']);
    assert.equal(ticket.certificateKey, 'ab'.repeat(32));
    assert.deepEqual(ticket.controlPlaneFiles, [
      { path: CLUSTER_SECRETS_TICKET_PATH, data: Buffer.from('the cluster secrets file') },
    ]);
  });
});

describe('JoinService: issueRejoinTicket', () => {
  it('refuses a node it never admitted', async () => {
    const { js } = await service();
    verdict = attested(10, 10);
    await js.challenge({ identity }, PEER);
    await assert.rejects(
      js.issueRejoinTicket({ attestation: doc, diskUuid: DISK }, PEER),
      refusedWith(grpc.status.PERMISSION_DENIED, /no admission record/),
    );
  });

  it('refuses without a challenge on the connection', async () => {
    const { js } = await service();
    await assert.rejects(
      js.issueRejoinTicket({ attestation: doc, diskUuid: DISK }, PEER),
      refusedWith(grpc.status.FAILED_PRECONDITION, /no outstanding challenge/),
    );
  });
});
