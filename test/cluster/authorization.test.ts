// @tier system: swtpm (agents on loopback)
// kubeadm in this test is the stand-in (test/kubeadm): real PKI, config decoding and preflight, its own API server; no kubelet, no control-plane Pods.
// On the wire: a real agent initialized as control plane (its own swtpm), and joining machines that
// each hold a swtpm and ask what an attacker would ask. Every TPM attests honestly — the quote passes — and the
// JoinService still gives each only what the operator's records say it may have.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { createTrust, type Trust } from '../../attestation/ek-chain.js';
import { parseTpmtPublic } from '../../attestation/tpm-structures.js';
import { initCluster } from '../../cli/init/init-cluster.js';
import {
  deriveOwnerSeed,
  ekKeyHash,
  ownerPublicKeyText,
  parseOwnerPublicKey,
  verifyOwnerProof,
} from '../../common/contracts/owner.js';
import { deriveClusterId, deriveDiskKey } from '../../common/keys.js';
import type { IssueJoinTicketResponse } from '../../gen/proto/join.js';
import { type AgentNode, publishInventory, startAgentNode } from '../harness/agent-node.js';
import { initRequest, testVerifier } from '../harness/cluster-kit.js';
import {
  confirmJoin,
  requestJoinTicket,
  requestOwnerProof,
  requestRejoinTicket,
  startWireMachine,
  type WireMachine,
} from '../harness/join-wire.js';
import { createSwtpmCa, removeSwtpmCa, type SwtpmCa } from '../harness/swtpm.js';

function ekOf(m: WireMachine): string {
  return ekKeyHash(parseTpmtPublic(m.issuer.identity().ekPublic).key.export({ type: 'spki', format: 'der' }));
}

function refused(code: keyof typeof grpc.status, message: RegExp) {
  return (err: Error) => {
    assert.match(err.message, new RegExp(`\\b${code}: `), err.message);
    assert.match(err.message, message);
    return true;
  };
}

describe('JoinService authorization on the wire (swtpm, real agent)', { timeout: 180_000 }, () => {
  let ca: SwtpmCa;
  let cp: AgentNode;
  let trust: Trust;
  let master: { key: Buffer; salt: Buffer };
  let clusterId: Buffer;
  const machines: WireMachine[] = [];
  const endpoint = () => ({ host: '127.0.0.1', port: cp.joinServicePort });
  let worker: WireMachine;
  let controlPlane: WireMachine;
  const machine = async (akAlgorithm?: 'ecc' | 'rsa'): Promise<WireMachine> => {
    const m = await startWireMachine(ca, akAlgorithm ? { akAlgorithm } : {});
    machines.push(m);
    return m;
  };
  const ask = async (
    m: WireMachine,
    over: { nodeName?: string; isControlPlane?: boolean; diskUuid?: string } = {},
  ) =>
    requestJoinTicket(endpoint(), trust, m.issuer, {
      nodeName: over.nodeName ?? 'w-0',
      diskUuid: over.diskUuid ?? randomUUID(),
      ...(over.isControlPlane !== undefined ? { isControlPlane: over.isControlPlane } : {}),
    });

  before(async () => {
    ca = await createSwtpmCa();
    trust = createTrust({ ekCaCertificates: [ca.rootPem, ca.issuerPem] });
    // Every machine here shares 127.0.0.1, which the per-address rate limit would otherwise throttle.
    cp = await startAgentNode({ ca, name: 'cp-0', env: { SEXTANT_JOIN_BURST_PER_PEER: '1000' } });
    worker = await machine();
    controlPlane = await machine();
    // What `create` hands the cluster: cp-0, w-0 (worker) and cp-1 (control plane), by EK, signed by the owner key.
    await publishInventory([cp], cp.initSecret, [
      { name: 'w-0', role: 'worker', eks: [ekOf(worker)] },
      { name: 'cp-1', role: 'control-plane', eks: [ekOf(controlPlane)] },
    ]);
    const init = initRequest(cp.initSecret);
    master = { key: init.masterKey, salt: init.masterSalt };
    const done = await initCluster({
      endpoint: { host: '127.0.0.1', port: cp.initPort },
      verifier: testVerifier(ca),
      request: init.request,
    });
    clusterId = done.clusterId;
    await cp.waitFor((l) => l.msg === 'JoinService listening', 30_000);
  });
  after(async () => {
    for (const m of machines) await m.stop();
    await cp?.stop();
    if (ca) removeSwtpmCa(ca);
  });

  it('a worker that sets is_control_plane gets no cluster secrets, no certificates, no certificate key', async () => {
    const ticket = await ask(worker, { isControlPlane: true });
    assert.equal(ticket.isControlPlane, false);
    assert.equal(ticket.nodeName, 'w-0');
    assert.deepEqual(ticket.controlPlaneFiles, []);
    assert.equal(
      (ticket as IssueJoinTicketResponse & { clusterSecrets?: Buffer }).clusterSecrets?.length ?? 0,
      0,
    );
  });

  it("a node_name of the control plane is ignored: the ticket names the TPM's own name", async () => {
    const stranger = await machine();
    const ticket = await ask(stranger, { nodeName: 'cp-0' });
    assert.equal(ticket.nodeName, `node-${ekOf(stranger).slice(0, 16)}`);
  });

  it("a new TPM asking with another node's disk UUID is refused and gets no key", async () => {
    const diskUuid = randomUUID();
    const owned = await machine();
    const first = await ask(owned, { diskUuid });
    assert.deepEqual(first.stateDiskKey, deriveDiskKey(master, diskUuid));
    const thief = await machine();
    await assert.rejects(
      ask(thief, { diskUuid }),
      refused('PERMISSION_DENIED', /state disk .* is registered to another TPM/),
    );
  });

  it('the same TPM with a second AK is the same node: once confirmed, another disk is refused', async () => {
    const ecc = await machine('ecc');
    const eccAk = ecc.issuer.identity().akPublic;
    const eccEk = ecc.issuer.identity().ekPublic;
    const diskUuid = randomUUID();
    const ticket = await ask(ecc, { diskUuid });
    // The node joined: PCR 15 = the cluster's, confirmed over a fresh attestation.
    await ecc.tpm.extendPcr(15, deriveClusterId(ticket.measurementSecret, ticket.measurementSalt));
    await confirmJoin(endpoint(), trust, ecc.issuer, diskUuid);
    // Reboot (PCRs reset), then the same TPM with an RSA AK (another key template) asks again with a new disk.
    await ecc.issuer.close();
    await ecc.tpm.close();
    await ecc.swtpm.restart();
    const { openTpm } = await import('../../native/tpm/index.js');
    const { createIssuer } = await import('../../attestation/issuer.js');
    const tpm = await openTpm(ecc.swtpm.tcti);
    const rsa = await createIssuer({
      tpm,
      variant: 'qemu-vtpm',
      eventLogPath: '/nonexistent',
      akAlgorithm: 'rsa',
    });
    try {
      assert.notDeepEqual(rsa.identity().akPublic, eccAk, 'another AK');
      assert.deepEqual(rsa.identity().ekPublic, eccEk, 'the same EK');
      await assert.rejects(
        requestJoinTicket(endpoint(), trust, rsa, {
          nodeName: 'w-x',
          diskUuid: randomUUID(),
        }),
        refused(
          'FAILED_PRECONDITION',
          /joined before \(as node-[0-9a-f]{16}, confirmed\) with another state disk/,
        ),
      );
    } finally {
      await rsa.close();
      await tpm.close();
    }
  });

  it("a node whose PCR 15 holds another cluster's ID is refused; a rejoin needs this cluster's", async () => {
    const other = await machine();
    await other.tpm.extendPcr(15, randomBytes(32));
    await assert.rejects(ask(other), refused('PERMISSION_DENIED', /PCR 15 is [0-9a-f]{64}, not zero/));

    const fresh = await machine();
    const diskUuid = randomUUID();
    await ask(fresh, { diskUuid });
    await assert.rejects(
      requestRejoinTicket(endpoint(), trust, fresh.issuer, diskUuid),
      refused('PERMISSION_DENIED', /PCR 15 is 0{64}, not this cluster's value/),
    );
    await fresh.tpm.extendPcr(15, clusterId);
    const rejoin = await requestRejoinTicket(endpoint(), trust, fresh.issuer, diskUuid);
    assert.deepEqual(rejoin.stateDiskKey, deriveDiskKey(master, diskUuid));
  });

  it('an inventory control plane gets the control-plane material, whatever it asked', async () => {
    const ticket = await ask(controlPlane, { isControlPlane: false, nodeName: 'whatever' });
    assert.equal(ticket.isControlPlane, true);
    assert.equal(ticket.nodeName, 'cp-1');
    assert.ok(ticket.controlPlaneFiles.length > 0, 'control-plane files');
  });

  it("the JoinService proves the operator's key over a node's nonce, bound to its own TLS key", async () => {
    const nonce = randomBytes(32);
    const { signature, serverSpki } = await requestOwnerProof(endpoint(), trust, nonce);
    const owner = parseOwnerPublicKey(ownerPublicKeyText(deriveOwnerSeed(cp.initSecret)));
    assert.ok(verifyOwnerProof(owner, nonce, serverSpki, signature));
    const otherOperator = parseOwnerPublicKey(ownerPublicKeyText(deriveOwnerSeed(randomBytes(32))));
    assert.ok(!verifyOwnerProof(otherOperator, nonce, serverSpki, signature));
  });

  it("a measurements file hand-edited on the control plane's disk changes nothing", async () => {
    // An edit that would lock every node out (PCR 0 enforced to a value no TPM has), written without the MAC.
    const forged = { measurements: { 0: { expected: 'ee'.repeat(32), warnOnly: false } } };
    await writeFile(join(cp.stateDir, 'measurements.json'), JSON.stringify(forged));
    const line = await cp.waitFor((l) => /measurements reload refused/.test(String(l.msg)), 30_000);
    assert.match(String(line.msg), /its MAC does not verify/);
    // The JoinService still admits against the measurements it got at init.
    const ticket = await ask(await machine());
    assert.equal(ticket.stateDiskKey.length, 32);
  });

  it('a fresh node of another operator skips this JoinService, names it, and takes no lock', async () => {
    // Same image, same EK CA, pointed at this JoinService by its metadata — but its operator is another one.
    const foreign = await startAgentNode({
      ca,
      name: 'foreign-0',
      role: 'worker',
      joinEndpoints: [`127.0.0.1:${cp.joinServicePort}`],
      env: { SEXTANT_JOIN_BURST_PER_PEER: '1000' },
    });
    try {
      const line = await foreign.waitFor((l) => /join via .* failed/.test(String(l.msg)), 60_000);
      assert.match(
        String(line.msg),
        new RegExp(
          `JoinService 127\\.0\\.0\\.1:${cp.joinServicePort} does not belong to this node's operator.*skipped`,
        ),
      );
      // Discovery goes on: it tries again, and never joins.
      await foreign.waitFor((l) => /join via .* failed/.test(String(l.msg)) && l !== line, 60_000);
      assert.ok(!foreign.lines.some((l) => /node lock taken|joined the cluster/.test(String(l.msg))));
      assert.ok(!cp.lines.some((l) => /admitted foreign-0/.test(String(l.msg))), 'it never even asked');
    } finally {
      await foreign.stop();
    }
  });
});
