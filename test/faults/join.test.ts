// @tier system: swtpm (agents on loopback)
// A worker whose join fails after admission joins again. Its disk ID is persisted before any ticket is
// asked for and survives the reset; a failed join ends the agent for the reboot (exit 75, saying why) instead of
// idling; no log line claims a write that failed. Real agents with swtpm on loopback; the worker's state on a
// small tmpfs for the full-disk cases; "reboot" = the TPM restarted (PCR 15 back to zero) + the agent restarted.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXIT_REBOOT_REQUIRED } from '../../agent/main.js';
import { NodeStateStore } from '../../agent/state/node-state.js';
import { type AgentNode, initControlPlane, startAgentNode } from '../harness/agent-node.js';
import { kubeadmStandin } from '../harness/cluster-kit.js';
import { createSwtpmCa, removeSwtpmCa, type SwtpmCa } from '../harness/swtpm.js';
import { inventoryPublisher } from './tools/inventory.js';
import { mountSmallDisk, type SmallDisk } from './tools/tmpfs.js';

const msg = (l: Record<string, unknown>) => String(l.msg ?? '');
const JOINED = (l: Record<string, unknown>) => /^joined the cluster as /.test(msg(l));

describe('a failed join is not the end: the node joins again with its disk ID', { timeout: 600_000 }, () => {
  let ca: SwtpmCa;
  let disk: SmallDisk;
  let cp: AgentNode;
  let initSecret: Buffer;
  let publish: (n: AgentNode) => Promise<void>;
  const nodes: AgentNode[] = [];
  before(async () => {
    ca = await createSwtpmCa();
    disk = await mountSmallDisk(1024);
    kubeadmStandin();
    initSecret = randomBytes(32);
    publish = inventoryPublisher(initSecret);
    // Every worker shares 127.0.0.1, which the per-address rate limit would otherwise throttle.
    cp = await startAgentNode({
      ca,
      initSecret,
      beforeStart: publish,
      env: { SEXTANT_JOIN_BURST_PER_PEER: '100' },
    });
    nodes.push(cp);
    await initControlPlane(cp, ca);
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    await disk.unmount();
    removeSwtpmCa(ca);
  });

  async function worker(env: NodeJS.ProcessEnv = {}, waitReady = true): Promise<AgentNode> {
    const w = await startAgentNode({
      ca,
      role: 'worker',
      initSecret,
      joinEndpoints: [`127.0.0.1:${cp.joinServicePort}`],
      beforeStart: publish,
      env,
      waitReady,
    });
    nodes.push(w);
    return w;
  }
  async function reboot(w: AgentNode, env: NodeJS.ProcessEnv = {}): Promise<void> {
    await w.kill();
    await w.tpm.restart();
    await w.restart(env);
  }

  it('kubeadm join fails after admission: the agent exits for the reboot saying why; after it the node joins with the same disk ID', async () => {
    const w = await worker({ KUBEADM_STANDIN_FAIL_PHASE: 'preflight' });
    assert.equal(await w.exited(), EXIT_REBOOT_REQUIRED);
    const last = w.lines.filter((l) => l.level === 'error').at(-1);
    assert.match(
      msg(last ?? {}),
      /join failed at kubeadm-join: .*; reboot the node to join again; exiting; systemd restarts/,
    );
    const diskId = (await readFile(join(w.stateDir, 'disk-id'), 'utf8')).trim();

    await reboot(w, { KUBEADM_STANDIN_FAIL_PHASE: '' });
    await w.waitFor((l) => /boot decision: reset/.test(msg(l)), 30_000);
    await w.waitFor(JOINED, 120_000);
    assert.equal(
      (await readFile(join(w.stateDir, 'disk-id'), 'utf8')).trim(),
      diskId,
      'the disk ID survived the reset',
    );
    assert.equal((await new NodeStateStore(w.stateDir).load())?.diskUuid, diskId);
  });

  it('a full disk before the disk ID is written: no ticket is asked for; with room the node joins', async () => {
    const stateDir = join(disk.dir, 'w-nodiskid');
    await mkdir(stateDir, { recursive: true });
    await disk.fill();
    const admittedBefore = cp.lines.filter((l) => /^admitted /.test(msg(l))).length;
    const w = await worker({ SEXTANT_STATE_DIR: stateDir }, false);
    await w.waitFor((l) => /ENOSPC/.test(msg(l)), 60_000);
    assert.equal(
      cp.lines.filter((l) => /^admitted /.test(msg(l))).length,
      admittedBefore,
      'no ticket asked for',
    );
    await disk.free();
    await w.waitFor(JOINED, 120_000);
  });

  it('a full disk when the ticket arrives: the log does not claim the node was marked; after the reboot it joins with its disk ID', async () => {
    const stateDir = join(disk.dir, 'w-full');
    await mkdir(stateDir, { recursive: true });
    // The disk ID from an earlier attempt is on disk; then the disk fills up.
    const diskId = randomUUID();
    await writeFile(join(stateDir, 'disk-id'), `${diskId}\n`, { mode: 0o600 });
    await disk.free();
    await disk.fill();
    const w = await worker({ SEXTANT_STATE_DIR: stateDir }, false);
    assert.equal(await w.exited(), EXIT_REBOOT_REQUIRED);
    const failed = w.lines.find((l) => /^join failed at persist-state/.test(msg(l)));
    assert.ok(failed, JSON.stringify(w.lines.slice(-5)));
    assert.match(msg(failed), /persist-state: .*ENOSPC.*; node NOT marked for reset; reboot the node/);
    assert.ok(!w.lines.some((l) => /node marked for reset/.test(msg(l))), 'no claim of a write that failed');

    await disk.free();
    await reboot(w, { SEXTANT_STATE_DIR: stateDir });
    await w.waitFor(JOINED, 120_000);
    assert.equal((await new NodeStateStore(stateDir).load())?.diskUuid, diskId);
  });
});
