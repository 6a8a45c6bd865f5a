// @tier system: swtpm (agents on loopback)
// On real agents: a control plane whose audit log was broken (garbage mid-file, a torn tail) starts
// again and admits nodes; a JoinService whose state disk is full refuses the admission it cannot audit
// (UNAVAILABLE), and the worker joins once there is room. The control plane's state lives on a small tmpfs.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isAdmission, readAuditTrail } from '../../agent/joinservice/audit-log.js';
import { type AgentNode, initControlPlane, startAgentNode } from '../harness/agent-node.js';
import { kubeadmStandin } from '../harness/cluster-kit.js';
import { createSwtpmCa, removeSwtpmCa, type SwtpmCa } from '../harness/swtpm.js';
import { inventoryPublisher } from './tools/inventory.js';
import { mountSmallDisk, type SmallDisk } from './tools/tmpfs.js';

const msg = (l: Record<string, unknown>) => String(l.msg ?? '');

describe('JoinService audit log on real agents', { timeout: 400_000 }, () => {
  let ca: SwtpmCa;
  let disk: SmallDisk;
  const nodes: AgentNode[] = [];
  before(async () => {
    ca = await createSwtpmCa();
    disk = await mountSmallDisk(2048);
    kubeadmStandin();
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    await disk.unmount();
    removeSwtpmCa(ca);
  });

  const worker = async (cp: AgentNode, initSecret: Buffer, publish: (n: AgentNode) => Promise<void>) => {
    const w = await startAgentNode({
      ca,
      role: 'worker',
      initSecret,
      joinEndpoints: [`127.0.0.1:${cp.joinServicePort}`],
      beforeStart: publish,
    });
    nodes.push(w);
    return w;
  };

  it('a full state disk: the admission it cannot audit is refused, nothing is recorded; with room again the worker joins', async () => {
    const initSecret = randomBytes(32);
    const publish = inventoryPublisher(initSecret);
    const stateDir = join(disk.dir, 'cp-state');
    const cp = await startAgentNode({
      ca,
      initSecret,
      beforeStart: publish,
      env: { SEXTANT_STATE_DIR: stateDir },
    });
    nodes.push(cp);
    await initControlPlane(cp, ca);

    await disk.fill();
    const w = await worker(cp, initSecret, publish);
    const refused = await w.waitFor((l) => /audit log unavailable/.test(msg(l)), 120_000);
    assert.match(msg(refused), /audit log unavailable: .*ENOSPC/);
    assert.ok(!cp.lines.some((l) => /^admitted /.test(msg(l))), 'no admission without its audit record');

    await disk.free();
    const line = await w.waitFor(
      (l) => /^joined the cluster/.test(msg(l)) || /^join failed/.test(msg(l)),
      180_000,
    );
    assert.match(msg(line), /^joined the cluster as /, JSON.stringify(line));
    const pub = await readFile(join(stateDir, 'joinservice/audit-key.pub.pem'), 'utf8');
    const trail = await readAuditTrail(join(stateDir, 'joinservice'), pub);
    assert.ok(trail.every((s) => s.error === undefined));
    const admitted = trail
      .flatMap((s) => s.records)
      .filter((r) => isAdmission(r.record) && r.record.verdict === 'admitted');
    assert.ok(admitted.length >= 1);
  });

  it('a restarted control plane whose audit log is broken (garbage mid-file, a torn tail) starts, says so, and admits', async () => {
    const initSecret = randomBytes(32);
    const publish = inventoryPublisher(initSecret);
    const cp = await startAgentNode({ ca, initSecret, beforeStart: publish });
    nodes.push(cp);
    await initControlPlane(cp, ca);
    const first = await worker(cp, initSecret, publish);
    await first.waitFor((l) => /^joined the cluster/.test(msg(l)), 180_000);

    await cp.kill('SIGKILL');
    const logPath = join(cp.stateDir, 'joinservice/admissions.log');
    const text = await readFile(logPath, 'utf8');
    await writeFile(logPath, text.replace('\n', '\n{"record":{"seq":\n'));
    await appendFile(logPath, '{"record":{"seq":99,"ti');
    await cp.restart();
    await cp.waitFor((l) => msg(l) === 'JoinService listening', 60_000);
    await cp.waitFor((l) => /new signed segment/.test(msg(l)), 5_000);

    const second = await worker(cp, initSecret, publish);
    const line = await second.waitFor(
      (l) => /^joined the cluster/.test(msg(l)) || /^join failed/.test(msg(l)),
      180_000,
    );
    assert.match(msg(line), /^joined the cluster as /);
  });
});
