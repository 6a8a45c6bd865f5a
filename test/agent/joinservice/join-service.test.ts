// The JoinService's request handling in-process, through its public methods (what the gRPC handlers call), with
// a fake verifier saying which TPM attested: the single-use challenge of a connection, attestation refusals, and
// authorization — name, role and disk decided by the server from the operator's inventory and the EK, never from
// the request; admissions keyed by EK, pending until confirmed; PCR 15 zero to join, the cluster's to come back.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { AdmissionRegistry } from '../../../agent/joinservice/admissions.js';
import {
  AuditAppendError,
  AuditLog,
  isAdmission,
  readAuditLog,
} from '../../../agent/joinservice/audit-log.js';
import {
  Inventory,
  type UnlistedPolicy,
  unlistedNodeName,
} from '../../../agent/joinservice/authorization.js';
import { JoinService } from '../../../agent/joinservice/join-service.js';
import { MeasurementsSource } from '../../../agent/joinservice/measurements-source.js';
import { CONTROL_PLANE_CERTIFICATES } from '../../../agent/kubeadm/control-plane-certs.js';
import type { ClusterSecrets } from '../../../agent/state/cluster-secrets.js';
import {
  createEphemeralIdentity,
  type EphemeralIdentity,
  type PeerVerifier,
  type VerifiedAttestation,
} from '../../../attestation/atls/index.js';
import { clusterPcrValue } from '../../../common/cluster-pcr.js';
import {
  deriveOwnerSeed,
  type InventoryNode,
  ownerPublicKeyText,
  parseOwnerPublicKey,
  verifyOwnerProof,
} from '../../../common/contracts/owner.js';
import { deriveDiskKey, deriveMeasurementSecret } from '../../../common/keys.js';
import { AttestationDocument, AttesterIdentity, Challenge } from '../../../gen/proto/attestation.js';
import type { IssueJoinTicketRequest, IssueRejoinTicketResponse } from '../../../gen/proto/join.js';
import { recordingLog } from '../../harness/recording-log.js';
import { tempDir } from '../../harness/temp-dir.js';
import { clusterIdOf, FakeBootstrapTokens, fakeClusterSecrets, kubeadmComponent } from '../fakes.js';

const DISK = '3b0b8c2e-2c2a-4a0e-9f7e-0d7b1b6f0a11';
const OTHER_DISK = '9c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f';
const THIRD_DISK = '5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9';

/** An EK (its public-key hash) per TPM of the tests. */
const EK = {
  cp0: Buffer.alloc(32, 0xc0),
  w0: Buffer.alloc(32, 0xa0),
  /** w-0's second EK (swtpm certifies an RSA and an ECC EK): the same node */
  w0ecc: Buffer.alloc(32, 0xae),
  w1: Buffer.alloc(32, 0xa1),
  stranger: Buffer.alloc(32, 0x5e),
};
const hex = (b: Buffer) => b.toString('hex');
const INVENTORY: InventoryNode[] = [
  { name: 'cp-0', role: 'control-plane', eks: [hex(EK.cp0)] },
  { name: 'w-0', role: 'worker', eks: [hex(EK.w0), hex(EK.w0ecc)] },
  { name: 'w-1', role: 'worker', eks: [hex(EK.w1)] },
];

const secrets = fakeClusterSecrets({
  components: [kubeadmComponent()],
  ownerSeed: deriveOwnerSeed(randomBytes(32)),
});
const clusterPcr = clusterPcrValue(clusterIdOf(secrets));

/** What the fake verifier says about the next document: who attested, or why it is refused. */
let verdict: VerifiedAttestation | Error;
function attested(ek: Buffer, options: { ak?: number; pcr15?: Buffer } = {}): VerifiedAttestation {
  return {
    pcrs: new Map([[15, options.pcr15 ?? Buffer.alloc(32)]]),
    warnings: [],
    akName: Buffer.alloc(34, options.ak ?? 1),
    ekCertificateHash: createHash('sha256').update(ek).update('cert').digest(),
    ekPublicHash: ek,
  };
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

const dir = tempDir('sextant-join-service-');

let seq = 0;
async function service(
  options: {
    unlisted?: UnlistedPolicy;
    secrets?: ClusterSecrets;
    audit?: AuditLog;
    /** The serial the inventory was taken at, and the cluster-secrets file on disk. */
    inventorySerial?: number;
    clusterSecretsFile?: string;
  } = {},
): Promise<{
  js: JoinService;
  tokens: FakeBootstrapTokens;
  admissions: AdmissionRegistry;
  audit: AuditLog;
  identity: EphemeralIdentity;
  log: ReturnType<typeof recordingLog>;
}> {
  const d = join(dir, `svc-${seq++}`);
  const log = recordingLog();
  const tokens = new FakeBootstrapTokens();
  const admissions = await AdmissionRegistry.open(d);
  const identity = await createEphemeralIdentity();
  const audit = options.audit ?? (await AuditLog.open(d));
  const js = new JoinService({
    log,
    identity,
    attester: {
      identity: async () => AttesterIdentity.fromPartial({}),
      attest: async () => AttestationDocument.fromPartial({}),
    },
    measurements: new MeasurementsSource(
      join(d, 'measurements.json'),
      '{"measurements":{}}',
      () => fakeVerifier,
      log,
      randomBytes(32),
    ),
    secrets: options.secrets ?? secrets,
    tokens,
    controlPlaneCertificates: async () => CP_CERTS,
    caCertHash: `sha256:${'cd'.repeat(32)}`,
    admissions,
    audit,
    inventory: async () => new Inventory(INVENTORY, options.inventorySerial),
    ...(options.unlisted ? { unlisted: options.unlisted } : {}),
    clusterSecretsFile: () => Buffer.from(options.clusterSecretsFile ?? 'the cluster secrets file'),
  });
  return { js, tokens, admissions, audit, identity, log };
}

/** What launch reads from /etc/kubernetes/pki for control-plane tickets. */
const CP_CERTS = CONTROL_PLANE_CERTIFICATES.map((path) => ({ path, data: Buffer.from(`pem of ${path}`) }));

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
    isControlPlane: false,
    nodeName: name,
    ...overrides,
  };
}

/** One join as `ek` attests: challenge on the connection, then the ticket request. */
async function join_(
  js: JoinService,
  ek: Buffer,
  overrides: Partial<IssueJoinTicketRequest> = {},
  options: { ak?: number; pcr15?: Buffer; name?: string } = {},
) {
  verdict = attested(ek, options);
  await js.challenge({ identity }, PEER);
  return js.issueJoinTicket(await joinRequest(overrides, options.name ?? 'w-0'), PEER);
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
      name: 'a node whose PCR 15 holds another cluster (it took another lock)',
      req: () => joinRequest(),
      verdict: attested(EK.w0, { pcr15: Buffer.alloc(32, 0x77) }),
      code: grpc.status.PERMISSION_DENIED,
      error: /PCR 15 is 7777.*not zero: this node already took a node lock/,
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.name}, admitting nobody and making no token`, async () => {
      const { js, tokens, admissions, log } = await service();
      verdict = c.verdict ?? attested(EK.w0);
      if (c.challenge !== false) await js.challenge({ identity }, PEER);
      await assert.rejects(js.issueJoinTicket(await c.req(), PEER), refusedWith(c.code, c.error));
      assert.deepEqual(tokens.calls, []);
      assert.deepEqual(admissions.all(), []);
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
    verdict = attested(EK.w0);
    await assert.rejects(
      js.issueJoinTicket(await joinRequest(), PEER),
      refusedWith(grpc.status.FAILED_PRECONDITION, /no outstanding challenge/),
    );
  });

  it('keeps challenges apart per connection: one asked on another peer does not count', async () => {
    const { js } = await service();
    verdict = attested(EK.w0);
    await js.challenge({ identity }, 'ipv4:10.0.0.8:5000');
    await assert.rejects(
      js.issueJoinTicket(await joinRequest(), PEER),
      refusedWith(grpc.status.FAILED_PRECONDITION, /no outstanding challenge/),
    );
  });
});

describe('JoinService: the server decides role and name, never the request', () => {
  it('a worker that asks to be a control plane gets a worker ticket: no cluster secrets, no certificates', async () => {
    const { js, tokens, admissions } = await service();
    const ticket = await join_(js, EK.w0, { isControlPlane: true });
    assert.equal(ticket.isControlPlane, false);
    assert.deepEqual(ticket.controlPlaneFiles, []);
    assert.equal(ticket.clusterSecrets.length, 0);
    assert.deepEqual(tokens.calls, ['create sextant join ticket for w-0']);
    assert.equal(ticket.token, 'tok000.0123456789abcdef');
    assert.equal(admissions.get(hex(EK.w0))?.role, 'worker');
  });

  it("a worker that asks for the control plane's name gets a ticket for its own name only", async () => {
    const { js, tokens } = await service();
    const ticket = await join_(js, EK.w1, { nodeName: 'cp-0' }, { name: 'cp-0' });
    assert.equal(ticket.nodeName, 'w-1');
    assert.equal(ticket.isControlPlane, false);
    assert.deepEqual(tokens.calls, ['create sextant join ticket for w-1']);
  });

  it('an inventory control plane gets the control-plane material and its inventory name', async () => {
    const { js, tokens } = await service();
    const ticket = await join_(js, EK.cp0, { isControlPlane: false, nodeName: 'whatever' });
    assert.equal(ticket.isControlPlane, true);
    assert.equal(ticket.nodeName, 'cp-0');
    assert.deepEqual(tokens.calls, ['create sextant join ticket for cp-0']);
    // kubeadm's shared certificates in the ticket (no upload-certs, no certificate key); the secrets apart from them
    assert.deepEqual(ticket.controlPlaneFiles, CP_CERTS);
    assert.deepEqual(ticket.clusterSecrets, Buffer.from('the cluster secrets file'));
  });

  const handovers: { name: string; taken: number; file: object; serial: number }[] = [
    {
      name: 'the serial taken goes into the cluster secrets',
      taken: 5,
      file: { clusterName: 'c' },
      serial: 5,
    },
    {
      name: 'a higher serial the file holds stays',
      taken: 5,
      file: { clusterName: 'c', inventorySerial: 7 },
      serial: 7,
    },
  ];
  for (const h of handovers) {
    it(`a control-plane ticket hands over the inventory serial: ${h.name}`, async () => {
      const { js } = await service({ inventorySerial: h.taken, clusterSecretsFile: JSON.stringify(h.file) });
      const ticket = await join_(js, EK.cp0, {});
      assert.deepEqual(JSON.parse(ticket.clusterSecrets.toString('utf8')), {
        ...h.file,
        inventorySerial: h.serial,
      });
      const worker = await join_(js, EK.w1, { diskUuid: OTHER_DISK });
      assert.equal(worker.clusterSecrets.length, 0, 'a worker gets no cluster secrets');
    });
  }

  it('a node the inventory does not list joins as a worker named after its EK (default policy)', async () => {
    const { js } = await service();
    const ticket = await join_(js, EK.stranger, { isControlPlane: true, nodeName: 'cp-0' }, { name: 'cp-0' });
    assert.equal(ticket.isControlPlane, false);
    assert.equal(ticket.nodeName, unlistedNodeName(hex(EK.stranger)));
    assert.equal(ticket.nodeName, `node-${hex(EK.stranger).slice(0, 16)}`);
    assert.deepEqual(ticket.controlPlaneFiles, []);
  });

  it("with the 'refuse' policy a node the inventory does not list is refused", async () => {
    const { js, tokens } = await service({ unlisted: 'refuse' });
    await assert.rejects(
      join_(js, EK.stranger),
      refusedWith(grpc.status.PERMISSION_DENIED, /not in the operator's inventory/),
    );
    assert.deepEqual(tokens.calls, []);
  });

  it('what the node claimed is audited beside what it got', async () => {
    const { js, audit } = await service();
    await join_(js, EK.w0, { isControlPlane: true, nodeName: 'cp-0' }, { name: 'cp-0' });
    const records = (await readAuditLog(audit.path, audit.publicKeyPem))
      .map((r) => r.record)
      .filter(isAdmission);
    const admitted = records.find((r) => r.verdict === 'admitted');
    assert.equal(admitted?.nodeName, 'w-0');
    assert.match(
      admitted?.reason ?? '',
      /worker by inventory; it asked for "cp-0" as control plane \(ignored\)/,
    );
    assert.match(admitted?.reason ?? '', new RegExp(`EK ${hex(EK.w0)}`));
  });
});

describe('JoinService: admissions keyed by EK', () => {
  it("a new TPM asking with another node's disk UUID is refused, and gets no key", async () => {
    const { js, tokens } = await service();
    await join_(js, EK.w0);
    tokens.calls = [];
    await assert.rejects(
      join_(js, EK.w1),
      refusedWith(
        grpc.status.PERMISSION_DENIED,
        new RegExp(`state disk ${DISK} is registered to another TPM \\(w-0\\)`),
      ),
    );
    assert.deepEqual(tokens.calls, []);
  });

  it('the same TPM with a second AK is still the same node: one admission, one disk once confirmed', async () => {
    const { js, admissions } = await service();
    await join_(js, EK.w0, {}, { ak: 1 });
    await admissions.confirm(hex(EK.w0));
    await assert.rejects(
      join_(js, EK.w0, { diskUuid: OTHER_DISK }, { ak: 2 }),
      refusedWith(
        grpc.status.FAILED_PRECONDITION,
        /this TPM joined before \(as w-0, confirmed\) with another state disk; rejoin instead/,
      ),
    );
    assert.equal(admissions.all().length, 1);
    assert.equal(admissions.get(hex(EK.w0))?.diskUuid, DISK);
  });

  it('the same TPM through its other EK is the same node: one admission, its disk, never a second one', async () => {
    const { js, admissions } = await service();
    await join_(js, EK.w0);
    await admissions.confirm(hex(EK.w0));
    await assert.rejects(
      join_(js, EK.w0ecc, { diskUuid: OTHER_DISK }, { ak: 2 }),
      refusedWith(grpc.status.FAILED_PRECONDITION, /this TPM joined before \(as w-0, confirmed\)/),
    );
    const again = await join_(js, EK.w0ecc, {}, { ak: 2 });
    assert.equal(again.nodeName, 'w-0');
    assert.equal(admissions.all().length, 1);
  });

  it('a pending admission is replaced by the same EK (a node that restarted before it confirmed)', async () => {
    const { js, admissions } = await service();
    await join_(js, EK.w0);
    const ticket = await join_(js, EK.w0, { diskUuid: OTHER_DISK }, { ak: 2 });
    assert.deepEqual(ticket.stateDiskKey, deriveDiskKey(secrets.masterSecret, OTHER_DISK));
    assert.equal(admissions.get(hex(EK.w0))?.diskUuid, OTHER_DISK);
    assert.equal(admissions.get(hex(EK.w0))?.state, 'pending');
    assert.equal(admissions.holderOfDisk(DISK), undefined, 'the replaced disk is free again');
  });

  it('a lost ticket is reissued for the same TPM and disk, pending or confirmed', async () => {
    const { js, admissions } = await service();
    await join_(js, EK.w0);
    await join_(js, EK.w0);
    await admissions.confirm(hex(EK.w0));
    const again = await join_(js, EK.w0);
    assert.deepEqual(again.stateDiskKey, deriveDiskKey(secrets.masterSecret, DISK));
    assert.equal(admissions.get(hex(EK.w0))?.state, 'confirmed', 'a reissue does not undo the confirmation');
  });

  it('a node name held by another EK is refused (an unlisted TPM cannot take an inventory name by admission)', async () => {
    const { js, admissions } = await service();
    await admissions.record({
      ek: hex(EK.stranger),
      nodeName: 'w-1',
      diskUuid: THIRD_DISK,
      role: 'worker',
      state: 'confirmed',
      akName: '',
      ekCertificateHash: '',
      admittedAt: new Date(0).toISOString(),
    });
    await assert.rejects(
      join_(js, EK.w1),
      refusedWith(grpc.status.PERMISSION_DENIED, /node name w-1 is registered to another TPM/),
    );
  });

  it('the admission counts only once audited: an audit log that cannot write refuses it', async () => {
    const failing = {
      path: '/nonexistent/audit.log',
      publicKeyPem: '',
      append: async () => {
        throw new AuditAppendError('/nonexistent/audit.log', new Error('ENOSPC'));
      },
      countRefusal: () => {},
      close: async () => {},
    } as unknown as AuditLog;
    const { js, admissions } = await service({ audit: failing });
    await assert.rejects(
      join_(js, EK.w0),
      refusedWith(grpc.status.UNAVAILABLE, /audit log unavailable: .*ENOSPC/),
    );
    assert.deepEqual(admissions.all(), []);
  });
});

describe('JoinService: confirm and rejoin', () => {
  async function admitted() {
    const s = await service();
    await join_(s.js, EK.w0);
    return s;
  }
  const back = async (
    js: JoinService,
    what: 'rejoin' | 'confirm',
    ek: Buffer,
    pcr15: Buffer,
    disk = DISK,
  ) => {
    verdict = attested(ek, { pcr15 });
    await js.challenge({ identity }, PEER);
    return what === 'rejoin'
      ? js.issueRejoinTicket({ attestation: doc, diskUuid: disk }, PEER)
      : js.confirmJoin({ attestation: doc, diskUuid: disk }, PEER);
  };

  it('a confirmation with PCR 15 = the cluster value turns the admission confirmed', async () => {
    const { js, admissions } = await admitted();
    assert.equal(admissions.get(hex(EK.w0))?.state, 'pending');
    await back(js, 'confirm', EK.w0, clusterPcr);
    assert.equal(admissions.get(hex(EK.w0))?.state, 'confirmed');
  });

  it('the rejoin gives the admitted TPM the key of the disk it joined with, and confirms it', async () => {
    const { js, admissions } = await admitted();
    const ticket = (await back(js, 'rejoin', EK.w0, clusterPcr)) as IssueRejoinTicketResponse;
    assert.deepEqual(ticket.stateDiskKey, deriveDiskKey(secrets.masterSecret, DISK));
    assert.deepEqual(ticket.measurementSecret, deriveMeasurementSecret(secrets.masterSecret));
    assert.equal(admissions.get(hex(EK.w0))?.state, 'confirmed');
  });

  const refusals: { name: string; ek: Buffer; pcr15: () => Buffer; disk: string; error: RegExp }[] = [
    {
      name: 'a TPM never admitted here',
      ek: EK.w1,
      pcr15: () => clusterPcr,
      disk: DISK,
      error: /no admission for this TPM/,
    },
    {
      name: 'another disk than it joined with',
      ek: EK.w0,
      pcr15: () => clusterPcr,
      disk: OTHER_DISK,
      error: /disk_uuid is not the disk this TPM joined with/,
    },
    {
      name: 'PCR 15 still zero (no lock taken)',
      ek: EK.w0,
      pcr15: () => Buffer.alloc(32),
      disk: DISK,
      error: /PCR 15 is 0{64}, not this cluster's value/,
    },
    {
      name: "PCR 15 = another cluster's value",
      ek: EK.w0,
      pcr15: () => clusterPcrValue(randomBytes(32)),
      disk: DISK,
      error: /not this cluster's value/,
    },
  ];
  for (const what of ['rejoin', 'confirm'] as const) {
    for (const r of refusals) {
      it(`${what}: refuses ${r.name}`, async () => {
        const { js, admissions } = await admitted();
        await assert.rejects(
          back(js, what, r.ek, r.pcr15(), r.disk),
          refusedWith(grpc.status.PERMISSION_DENIED, r.error),
        );
        assert.equal(admissions.get(hex(EK.w0))?.state, 'pending');
      });
    }
  }

  it('refuses without a challenge on the connection', async () => {
    const { js } = await admitted();
    await assert.rejects(
      js.issueRejoinTicket({ attestation: doc, diskUuid: DISK }, PEER),
      refusedWith(grpc.status.FAILED_PRECONDITION, /no outstanding challenge/),
    );
  });
});

describe('JoinService: proveOwner', () => {
  it("signs the node's nonce with the owner key, bound to this server's TLS key", async () => {
    const { js, identity: tls } = await service();
    const nonce = randomBytes(32);
    const proof = await js.proveOwner({ nonce });
    const owner = parseOwnerPublicKey(ownerPublicKeyText(secrets.ownerSeed!));
    assert.ok(verifyOwnerProof(owner, nonce, tls.spkiDer, proof.signature));
    assert.ok(!verifyOwnerProof(owner, randomBytes(32), tls.spkiDer, proof.signature), 'another nonce');
    const other = await createEphemeralIdentity();
    assert.ok(!verifyOwnerProof(owner, nonce, other.spkiDer, proof.signature), 'relayed to another channel');
    const foreign = parseOwnerPublicKey(ownerPublicKeyText(deriveOwnerSeed(randomBytes(32))));
    assert.ok(!verifyOwnerProof(foreign, nonce, tls.spkiDer, proof.signature), "another operator's key");
  });

  it('refuses a nonce of the wrong size, and cannot prove anything without the owner key', async () => {
    const { js } = await service();
    await assert.rejects(
      js.proveOwner({ nonce: randomBytes(8) }),
      refusedWith(grpc.status.INVALID_ARGUMENT, /nonce/),
    );
    const { ownerSeed: _seed, ...withoutOwner } = secrets;
    const { js: keyless } = await service({ secrets: withoutOwner });
    await assert.rejects(
      keyless.proveOwner({ nonce: randomBytes(32) }),
      refusedWith(grpc.status.FAILED_PRECONDITION, /holds no owner key/),
    );
  });
});

describe('JoinService: one short-lived bootstrap token per ticket, deleted once used', () => {
  const confirm = async (js: JoinService, ek: Buffer, pcr15 = clusterPcr) => {
    verdict = attested(ek, { pcr15 });
    await js.challenge({ identity }, PEER);
    return js.confirmJoin({ attestation: doc, diskUuid: DISK }, PEER);
  };

  it("the node's confirmation deletes its token; another node's token stays", async () => {
    const { js, tokens } = await service();
    await join_(js, EK.w0);
    await join_(js, EK.w1, { diskUuid: OTHER_DISK }, { name: 'w-1' });
    assert.deepEqual(
      [...tokens.live.values()],
      ['sextant join ticket for w-0', 'sextant join ticket for w-1'],
    );
    await confirm(js, EK.w0);
    assert.deepEqual([...tokens.live.values()], ['sextant join ticket for w-1']);
    assert.equal(tokens.calls.at(-1), 'delete tok000');
  });

  it('a second ticket for the same TPM deletes the token of the first before making its own', async () => {
    const { js, tokens } = await service();
    const first = await join_(js, EK.w0);
    const second = await join_(js, EK.w0);
    assert.notEqual(first.token, second.token);
    assert.deepEqual(tokens.calls, [
      'create sextant join ticket for w-0',
      'delete tok000',
      'create sextant join ticket for w-0',
    ]);
    assert.deepEqual([...tokens.live.keys()], ['tok001']);
  });

  it('a refused confirmation (PCR 15 not the cluster value) deletes no token', async () => {
    const { js, tokens } = await service();
    await join_(js, EK.w0);
    await assert.rejects(
      confirm(js, EK.w0, Buffer.alloc(32)),
      refusedWith(grpc.status.PERMISSION_DENIED, /PCR 15/),
    );
    assert.deepEqual([...tokens.live.keys()], ['tok000']);
  });

  it('no token from the API: the join is refused as unavailable and nobody is admitted', async () => {
    const { js, tokens, admissions } = await service();
    tokens.fail.create = new Error(
      'creating a bootstrap token: POST /api/v1/namespaces/kube-system/secrets: connect ECONNREFUSED',
    );
    await assert.rejects(
      join_(js, EK.w0),
      refusedWith(grpc.status.UNAVAILABLE, /no bootstrap token: .*ECONNREFUSED/),
    );
    assert.deepEqual(admissions.all(), []);
  });

  it('a confirmation goes through an audit log that cannot write: the token is deleted all the same', async () => {
    let broken = false;
    const real = await AuditLog.open(join(dir, `audit-${seq++}`));
    const audit = {
      path: real.path,
      publicKeyPem: real.publicKeyPem,
      append: async (entry: Parameters<AuditLog['append']>[0]) => {
        if (broken) throw new AuditAppendError(real.path, new Error('ENOSPC'));
        return real.append(entry);
      },
      countRefusal: (reason: string) => real.countRefusal(reason),
      close: () => real.close(),
    } as unknown as AuditLog;
    const { js, tokens, admissions, log } = await service({ audit });
    await join_(js, EK.w0);
    broken = true;
    await confirm(js, EK.w0);
    assert.equal(admissions.get(hex(EK.w0))?.state, 'confirmed');
    assert.deepEqual([...tokens.live.keys()], []);
    assert.ok(log.lines.some((l) => /audit log: .*ENOSPC/.test(l)));
  });

  it('a ticket is audited before its admission is recorded: the record follows the audit record', async () => {
    const order: string[] = [];
    const real = await AuditLog.open(join(dir, `audit-${seq++}`));
    const audit = {
      path: real.path,
      publicKeyPem: real.publicKeyPem,
      append: async (entry: Parameters<AuditLog['append']>[0]) => {
        await real.append(entry);
        order.push(`audit ${entry.verdict}`);
      },
      countRefusal: (reason: string) => real.countRefusal(reason),
      close: () => real.close(),
    } as unknown as AuditLog;
    const { js, admissions, tokens } = await service({ audit });
    const record = admissions.record.bind(admissions);
    admissions.record = async (a) => {
      order.push('record');
      return record(a);
    };
    const create = tokens.create.bind(tokens);
    tokens.create = async (...args) => {
      order.push('token');
      return create(...args);
    };
    await join_(js, EK.w0);
    assert.deepEqual(order, ['token', 'audit admitted', 'record']);
  });

  it('a token that cannot be deleted does not fail the confirmation: it is logged and left to expire', async () => {
    const { js, tokens, admissions, log } = await service();
    await join_(js, EK.w0);
    tokens.fail.delete = new Error('deleting bootstrap token tok000: 503 etcdserver: leader changed');
    await confirm(js, EK.w0);
    assert.equal(admissions.get(hex(EK.w0))?.state, 'confirmed');
    assert.ok(log.lines.some((l) => /bootstrap token tok000 not deleted \(it expires on its own\)/.test(l)));
  });
});
