// Every node attests from the host (sextant verify): the firmware PCRs the release's signed measurements name
// and PCR 15 = the extend of the cluster ID; `sextant status` says the same of every node, with the release's
// image version and Kubernetes Ready; the control plane journaled "cluster initialized".
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StatusReport } from '../../../cli/status/report.js';
import { loadState } from '../../../cli/workspace/state.js';
import { clusterPcrValue } from '../../../common/cluster-pcr.js';
import { agentJournal } from '../mini-cluster.js';
import type { Scenario } from './scenario.js';

function pcrLines(verifyOutput: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const m of verifyOutput.matchAll(/^PCR\s+(\d+): ([0-9a-f]{64})$/gm))
    out.set(Number(m[1]), m[2] as string);
  return out;
}

export const attestation: Scenario = {
  name: "every node attests against the release's signed measurements, PCR 15 = the cluster ID",
  async run(c) {
    const state = await loadState(c.ws);
    assert.ok(state, 'mini up wrote sextant-state.yaml');
    const pcr15 = clusterPcrValue(state.clusterId).toString('hex');
    const expected = (
      JSON.parse(await readFile(join(c.ws, 'sextant-measurements.json'), 'utf8')) as {
        measurements: Record<string, { expected: string; warnOnly: boolean }>;
      }
    ).measurements;
    for (const node of c.nodes) {
      const verified = await c.sextant(['verify', '--endpoint', `${node.address}:9000`]);
      assert.equal(verified.code, 0, verified.stderr);
      assert.doesNotMatch(verified.stderr, /INSECURE/);
      const pcrs = pcrLines(verified.stdout);
      assert.notEqual(pcrs.get(0), '00'.repeat(32), `${node.name}: PCR 0 (firmware) measured`);
      for (const [index, m] of Object.entries(expected)) {
        if (!m.warnOnly) assert.equal(pcrs.get(Number(index)), m.expected, `${node.name}: PCR ${index}`);
      }
      assert.equal(pcrs.get(15), pcr15, `${node.name}: PCR 15`);
    }
    const status = await c.sextant(['status', '-o', 'json']);
    assert.equal(status.code, 0, `${status.stdout}\n${status.stderr}`);
    const report = JSON.parse(status.stdout) as StatusReport;
    assert.equal(report.endpoint, state.endpoint);
    const version = (
      JSON.parse(await readFile(join(c.ws, 'sextant-measurements.json'), 'utf8')) as { version: string }
    ).version;
    assert.deepEqual(
      report.nodes.map((n) => [n.name, n.attested, n.imageVersion, n.kubernetes]),
      c.nodes.map((n) => [n.name, true, version, 'Ready']),
      status.stdout,
    );
    const cp = c.nodes.find((n) => n.role === 'control-plane');
    const initialized = (await agentJournal(cp?.consoleLog ?? '')).find(
      (e) => e.MESSAGE === 'cluster initialized',
    );
    assert.ok(initialized, 'the agent journaled "cluster initialized"');
    assert.equal(initialized.PRIORITY, '6');
  },
};
