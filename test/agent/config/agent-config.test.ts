import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULTS, loadAgentConfig } from '../../../agent/config/agent-config.js';
import { tempDir } from '../../harness/temp-dir.js';

const dir = tempDir('sextant-agent-config-');

let seq = 0;
async function file(content: unknown): Promise<string> {
  const path = join(dir, `agent-${seq++}.json`);
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

describe('loadAgentConfig', () => {
  it('uses the defaults when the default file is absent and nothing is set', async () => {
    assert.deepEqual(await loadAgentConfig({ SEXTANT_AGENT_CONFIG: undefined }), DEFAULTS);
  });

  it('layers defaults, then the file, then the environment', async () => {
    const path = await file({
      stateDir: '/srv/sextant',
      initPort: 9100,
      mdns: false,
      kubeletStart: ['true'],
    });
    const config = await loadAgentConfig({
      SEXTANT_AGENT_CONFIG: path,
      SEXTANT_INIT_PORT: '9200',
      SEXTANT_JOIN_ENDPOINTS: '10.0.0.1:30090, [fd00::1]:30090',
      SEXTANT_MDNS: '1',
      SEXTANT_KUBELET_START: '',
      SEXTANT_TCTI: 'swtpm:host=127.0.0.1,port=2321',
    });
    assert.equal(config.stateDir, '/srv/sextant', 'from the file');
    assert.equal(config.initPort, 9200, 'the environment wins over the file');
    assert.deepEqual(config.staticJoinEndpoints, ['10.0.0.1:30090', '[fd00::1]:30090']);
    assert.equal(config.mdns, true);
    assert.deepEqual(config.kubeletStart, [], 'an empty list from an empty variable');
    assert.equal(config.tcti, 'swtpm:host=127.0.0.1,port=2321');
    assert.equal(config.apiServerPort, DEFAULTS.apiServerPort, 'untouched keys keep their default');
  });

  const envRefusals: { name: string; env: Record<string, string>; key: string }[] = [
    { name: 'a port that is not a number', env: { SEXTANT_INIT_PORT: 'nine' }, key: 'initPort' },
    { name: 'a port out of range', env: { SEXTANT_JOIN_SERVICE_PORT: '70000' }, key: 'joinServicePort' },
    { name: 'an empty port', env: { SEXTANT_API_SERVER_PORT: '' }, key: 'apiServerPort' },
    { name: 'a boolean that is neither', env: { SEXTANT_MDNS: 'maybe' }, key: 'mdns' },
    { name: 'a burst of zero', env: { SEXTANT_JOIN_BURST_PER_PEER: '0' }, key: 'joinBurstPerPeer' },
  ];
  for (const r of envRefusals) {
    it(`refuses ${r.name} from the environment, naming the variable and the key`, async () => {
      const name = Object.keys(r.env)[0] ?? '';
      await assert.rejects(loadAgentConfig({ SEXTANT_AGENT_CONFIG: undefined, ...r.env }), (err: Error) => {
        assert.ok(err.message.includes(`environment ${name}`), err.message);
        assert.ok(err.message.includes(r.key), err.message);
        assert.match(err.message, /expected/);
        return true;
      });
    });
  }

  const fileRefusals: { name: string; content: unknown; says: RegExp }[] = [
    { name: 'an unknown key', content: { tcti: 'x', stateDirectory: '/x' }, says: /stateDirectory/ },
    { name: 'a string where a port belongs', content: { initPort: '9000' }, says: /initPort/ },
    { name: 'a list of non-strings', content: { ekCaCertificates: [1] }, says: /ekCaCertificates/ },
    { name: 'a timeout below a second', content: { kubeadmTimeoutMs: 10 }, says: /kubeadmTimeoutMs/ },
    { name: 'not an object', content: '[1]', says: /expected a JSON object/ },
    { name: 'not JSON', content: '{"tcti": ', says: /invalid JSON/ },
  ];
  for (const r of fileRefusals) {
    it(`refuses a file with ${r.name}, naming the file`, async () => {
      const path = await file(r.content);
      await assert.rejects(loadAgentConfig({ SEXTANT_AGENT_CONFIG: path }), (err: Error) => {
        assert.ok(err.message.startsWith(path), err.message);
        assert.match(err.message, r.says);
        return true;
      });
    });
  }

  it('refuses a config file the operator named that does not exist', async () => {
    const path = join(dir, 'missing.json');
    await assert.rejects(loadAgentConfig({ SEXTANT_AGENT_CONFIG: path }), (err: Error) => {
      assert.ok(err.message.startsWith(path));
      assert.match(err.message, /ENOENT/);
      return true;
    });
  });
});
