// @tier system: swtpm (agents on loopback)
// On a running agent: its TPM reached through the fault proxy. A dropped command is recovered (the
// agent attests again with the same AK); a TPM that stays gone ends the agent with a non-zero status and a
// journal line saying why; a "reboot required" start exits non-zero saying so, and the unit turns repeated failed
// starts into a reboot instead of an endless 3-second loop.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { EXIT_TPM_UNAVAILABLE } from '../../agent/main.js';
import { openAttestedChannel } from '../../attestation/atls/index.js';
import { startAgentNode, testCa } from '../harness/agent-node.js';
import { testVerifier } from '../harness/cluster-kit.js';
import { type Swtpm, type SwtpmCa, startSwtpm } from '../harness/swtpm.js';
import { startTpmProxy, TPM_CC, type TpmProxy } from './tools/tpm-proxy.js';

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, '../..');
const UNIT = join(REPO, 'mkosi.extra/usr/lib/systemd/system/sextant-agent.service');

async function attestedAk(ca: SwtpmCa, port: number): Promise<Buffer> {
  const ch = await openAttestedChannel({ host: '127.0.0.1', port }, { verifier: testVerifier(ca) });
  ch.close();
  return ch.attestation.akName;
}

describe('agent TPM faults: exits that say why, the EK certificate, measurements', {
  timeout: 180_000,
}, () => {
  let ca: SwtpmCa;
  let swtpm: Swtpm;
  let proxy: TpmProxy;
  before(async () => {
    ca = await testCa();
    swtpm = await startSwtpm({ ca });
    proxy = await startTpmProxy(swtpm.port);
  });
  after(async () => {
    await proxy.close();
    await swtpm.stop();
  });

  it('a dropped TPM command: the agent reopens its TPM and attests again with the same AK; then, TPM gone, it exits 70 saying why', async () => {
    const node = await startAgentNode({ ca, env: { SEXTANT_TCTI: proxy.tcti } });
    try {
      const ak = await attestedAk(ca, node.initPort);
      for (const fault of ['drop-command', 'drop-response'] as const) {
        const armed = proxy.arm({ fault, commandCode: TPM_CC.Quote });
        assert.ok((await attestedAk(ca, node.initPort)).equals(ak));
        await armed;
      }
      await node.waitFor((l) => /TPM context reopened \(2 so far\)/.test(String(l.msg)), 5000);
      assert.equal(node.process.exitCode, null, 'the agent runs on');

      // The TPM goes away for good: the next attestation request finds it gone, the agent gives up and exits.
      await proxy.close();
      await assert.rejects(attestedAk(ca, node.initPort));
      assert.equal(await node.exited(), EXIT_TPM_UNAVAILABLE);
      const last = node.lines.filter((l) => l.level === 'error').at(-1);
      assert.match(String(last?.msg), /reopens in a row failed, the TPM is gone.*systemd restarts the agent/);
    } finally {
      await node.stop();
      proxy = await startTpmProxy(swtpm.port);
    }
  });

  it('a dropped NV_ReadPublic while the agent starts: it reads its EK certificate all the same, and verifiers accept it', async () => {
    const armed = proxy.arm({ fault: 'drop-command', commandCode: TPM_CC.NV_ReadPublic });
    const node = await startAgentNode({ ca, env: { SEXTANT_TCTI: proxy.tcti } });
    try {
      await armed;
      // testVerifier checks the EK certificate chain: a node without one is refused here.
      await attestedAk(ca, node.initPort);
      assert.ok(node.lines.some((l) => /TPM context reopened \(1 so far\)/.test(String(l.msg))));
      assert.equal(node.process.exitCode, null);
    } finally {
      await node.stop();
    }
  });

  it('a TPM without an EK certificate: the agent fails its start saying why, instead of serving an identity every verifier refuses', async () => {
    const node = await startAgentNode({
      ca,
      waitReady: false,
      beforeStart: async (n) => {
        await run('tpm2_nvundefine', ['-C', 'p', '0x01c00002'], {
          env: { ...process.env, TPM2TOOLS_TCTI: n.tpm.tcti },
        });
      },
    });
    try {
      assert.equal(await node.exited(), 1);
      assert.match(
        node.stderr.join(''),
        /holds no EK certificate \(NV index 0x01c00002 is not defined\), which variant qemu-vtpm requires.*; exiting; systemd restarts the agent/,
      );
    } finally {
      await node.stop();
    }
  });

  it('`sextant-agent --print-measurements` rides out a dropped PCR_Read (the resilient layer), printing all 24 PCRs', async () => {
    const armed = proxy.arm({ fault: 'drop-response', commandCode: TPM_CC.PCR_Read });
    const env: NodeJS.ProcessEnv = { ...process.env, SEXTANT_TCTI: proxy.tcti };
    delete env.SEXTANT_AGENT_CONFIG;
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', join(REPO, 'agent/main.ts'), '--print-measurements'],
      { cwd: REPO, env },
    );
    await armed;
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.filter((l) => l.msg === 'pcr').length, 24);
    assert.ok(lines.some((l) => /reopening the TPM context/.test(String(l.msg))));
  });

  it('"reboot required" (PCR 15 extended, no state): the agent exits non-zero and its last line says why and what follows', async () => {
    await run('tpm2_pcrextend', [`15:sha256=${'ab'.repeat(32)}`], {
      env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti },
    });
    const node = await startAgentNode({ ca, env: { SEXTANT_TCTI: swtpm.tcti }, waitReady: false });
    try {
      assert.equal(await node.exited(), 1);
      assert.match(
        node.stderr.join(''),
        /PCR 15 is already extended but this node holds no state; reboot the node .*; exiting; systemd restarts the agent and reboots the node after 5 failed starts within 10 minutes/,
      );
    } finally {
      await node.stop();
      await swtpm.restart();
    }
  });

  it('the unit bounds restarts: 5 failed starts within 10 minutes reboot the node (systemd-analyze verify accepts it)', async () => {
    const unit = await readFile(UNIT, 'utf8');
    const settings = new Map(
      unit
        .split('\n')
        .filter((l) => /^[A-Za-z]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
    );
    assert.equal(settings.get('Restart'), 'on-failure');
    assert.equal(settings.get('StartLimitIntervalSec'), '10min');
    assert.equal(settings.get('StartLimitBurst'), '5');
    assert.equal(settings.get('StartLimitAction'), 'reboot');
    const verify = await run('systemd-analyze', ['verify', UNIT]).catch((e: { stderr: string }) => e);
    const complaints = String(verify.stderr)
      .split('\n')
      .filter((l) => l.includes('sextant-agent.service') && !/is not executable|No such file/.test(l));
    assert.deepEqual(complaints, []);
  });
});
