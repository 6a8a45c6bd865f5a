// @tier system: swtpm (agents on loopback)
// kubeadm in this test is the stand-in (test/kubeadm): real PKI, config decoding and preflight, its own API server; no kubelet, no control-plane Pods.
// A rejoin ticket hands the state-disk key only for the disk a node joined with, and only to that node's TPM.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createTrust } from '../../attestation/ek-chain.js';
import { deriveClusterId, deriveDiskKey } from '../../common/keys.js';
import { type AgentNode, initControlPlane, startAgentNode } from '../harness/agent-node.js';
import { initRequest } from '../harness/cluster-kit.js';
import {
  requestJoinTicket,
  requestRejoinTicket,
  startWireMachine,
  type WireMachine,
} from '../harness/join-wire.js';
import { createSwtpmCa, removeSwtpmCa, type SwtpmCa } from '../harness/swtpm.js';

describe('rejoin tickets', { timeout: 120_000 }, () => {
  let ca: SwtpmCa;
  let cp: AgentNode;
  let master: { key: Buffer; salt: Buffer };
  const machines: WireMachine[] = [];
  const machine = async (): Promise<WireMachine> => {
    const m = await startWireMachine(ca);
    machines.push(m);
    return m;
  };

  before(async () => {
    ca = await createSwtpmCa();
    // Every test machine shares 127.0.0.1, which the per-address rate limit would otherwise throttle.
    cp = await startAgentNode({ ca, env: { SEXTANT_JOIN_BURST_PER_PEER: '100' } });
    const init = initRequest(cp.initSecret);
    master = { key: init.masterKey, salt: init.masterSalt };
    await initControlPlane(cp, ca, init, 30_000);
  });
  after(async () => {
    for (const m of machines) await m.stop();
    await cp.stop();
    removeSwtpmCa(ca);
  });

  it('gives the joined node its disk key, and nobody else any key', async () => {
    const trust = createTrust({ ekCaCertificates: [ca.rootPem, ca.issuerPem] });
    const endpoint = { host: '127.0.0.1', port: cp.joinServicePort };
    const joined = await machine();
    const stranger = await machine();
    const diskUuid = randomUUID();
    const ticket = await requestJoinTicket(endpoint, trust, joined.issuer, {
      nodeName: 'w-0',
      diskUuid,
    });
    assert.deepEqual(ticket.stateDiskKey, deriveDiskKey(master, diskUuid));
    // A ticket lost on the way: the same TPM asking again for the same disk gets one again.
    const again = await requestJoinTicket(endpoint, trust, joined.issuer, {
      nodeName: 'w-0',
      diskUuid,
    });
    assert.deepEqual(again.stateDiskKey, ticket.stateDiskKey);

    // The node took its lock for this cluster (a rejoin needs PCR 15 = the cluster's value).
    await joined.tpm.extendPcr(15, deriveClusterId(ticket.measurementSecret, ticket.measurementSalt));
    const rejoin = await requestRejoinTicket(endpoint, trust, joined.issuer, diskUuid);
    assert.deepEqual(rejoin.stateDiskKey, deriveDiskKey(master, diskUuid));
    assert.deepEqual(rejoin.measurementSecret, ticket.measurementSecret);

    await assert.rejects(requestRejoinTicket(endpoint, trust, joined.issuer, randomUUID()), (err: Error) => {
      assert.match(err.message, /PERMISSION_DENIED: disk_uuid is not the disk this TPM joined with/);
      return true;
    });
    await assert.rejects(
      requestRejoinTicket(endpoint, trust, stranger.issuer, diskUuid),
      /PERMISSION_DENIED/,
    );
    // Joining again with the same TPM is refused too: its PCR 15 now shows it took a lock (and once confirmed,
    // another disk would be refused anyway): that is what rejoin is for.
    await assert.rejects(
      requestJoinTicket(endpoint, trust, joined.issuer, {
        nodeName: 'w-0',
        diskUuid: randomUUID(),
      }),
      /PERMISSION_DENIED: PCR 15 is [0-9a-f]{64}, not zero/,
    );
    const refusals = cp.lines.filter((l) => String(l.msg).startsWith('rejoin refused'));
    assert.equal(refusals.length, 2, 'each refusal is logged');
  });

  it('refuses a request over the size limit before reading it', async () => {
    const trust = createTrust({ ekCaCertificates: [ca.rootPem, ca.issuerPem] });
    const endpoint = { host: '127.0.0.1', port: cp.joinServicePort };
    const big = await machine();
    await assert.rejects(
      requestJoinTicket(endpoint, trust, big.issuer, {
        nodeName: 'w'.repeat(2 * 1024 * 1024),
        diskUuid: randomUUID(),
      }),
      /RESOURCE_EXHAUSTED: .*(larger than max|message larger)/i,
    );
  });
});
