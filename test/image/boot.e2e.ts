// Image smoke test: build the node image (cached by its inputs), boot it under QEMU/TCG with a manufactured
// swtpm, see the agent's structured journal entry and its ready marker on the serial console, power off.
// Direct kernel boot (SeaBIOS) always; the OVMF measured boot too unless SEXTANT_E2E_OVMF=0.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { bootVm, READY_MARKER } from '../harness/qemu.js';

const execFileAsync = promisify(execFile);
const repo = join(import.meta.dirname, '..', '..');

async function buildImage(): Promise<string> {
  const t0 = Date.now();
  const { stdout } = await execFileAsync('bash', [join(repo, 'scripts/image-build.sh')], {
    maxBuffer: 64 * 1024 * 1024,
  });
  const dir = stdout.trim().split('\n').pop() ?? '';
  console.log(`image ${dir} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return dir;
}

const metadata = JSON.stringify({
  name: 'smoke-0',
  role: 'control-plane',
  initSecretHash: 'a'.repeat(64),
  advertiseAddress: '10.0.2.15',
  peers: [],
  joinEndpoints: [],
});

/** The first console line that is a journal entry (journalctl -o json) of the agent. */
function agentJournalEntry(text: string): Record<string, string> | undefined {
  for (const line of text.split('\n')) {
    const start = line.indexOf('{"');
    if (start < 0 || !line.includes('"SYSLOG_IDENTIFIER":"sextant-agent"')) continue;
    try {
      return JSON.parse(line.slice(start).trim()) as Record<string, string>;
    } catch {
      // a console line cut by other output; try the next one
    }
  }
  return undefined;
}

const modes: ('direct' | 'ovmf')[] = process.env.SEXTANT_E2E_OVMF === '0' ? ['direct'] : ['direct', 'ovmf'];

test('node image boots and the agent logs to the journal and becomes ready', {
  timeout: 900_000,
}, async (t) => {
  const imageDir = await buildImage();
  for (const mode of modes) {
    await t.test(`${mode} boot`, async () => {
      const vm = await bootVm({
        name: `smoke-${mode}`,
        imageDir,
        mode,
        fwCfg: { 'opt/sextant/metadata': metadata },
      });
      try {
        const ready = await vm.waitFor(READY_MARKER, 300_000);
        console.log(
          `${mode}: agent ready ${ready.seconds.toFixed(1)} s after QEMU start (${ready.line.trim()})`,
        );
        const entry = agentJournalEntry(vm.console());
        assert.ok(entry, `no sextant-agent journal entry on the console (${vm.consoleLog})`);
        assert.equal(entry.SYSLOG_IDENTIFIER, 'sextant-agent');
        assert.ok(entry.MESSAGE && entry.PRIORITY, 'journal entry carries MESSAGE and PRIORITY');
        if (mode === 'ovmf') {
          const pcrs = await vm.waitFor(/SEXTANT-PCRS \{/, 10_000);
          const values = JSON.parse(pcrs.line.slice(pcrs.line.indexOf('{'))) as Record<string, string>;
          for (const i of ['0', '4', '9', '11'])
            assert.notEqual(values[i], '0'.repeat(64), `PCR ${i} is measured`);
        }
      } finally {
        const t0 = Date.now();
        await vm.powerOff(60_000);
        console.log(`${mode}: powered off in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      }
    });
  }
});
