// Stand-in node agent, used to exercise the image pipeline only while agent/main.ts does not exist.
// It honours the same contract as the real agent: config from SEXTANT_AGENT_CONFIG, metadata from fw_cfg,
// structured JSON lines on stdout (journal, SYSLOG_IDENTIFIER=sextant-agent), sd_notify READY=1 once listening.
// It also loads koffi and the tpm2-tss libraries so the image proves its native pieces are in place.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import koffi from 'koffi';

const started = performance.now();

function log(level: string, msg: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ level, msg, ...fields })}\n`);
}

interface AgentConfig {
  tcti: string;
  stateDir: string;
  metadataUrl: string;
  eventLogPath: string;
  initPort: number;
  joinServicePort: number;
}

const configPath = process.env.SEXTANT_AGENT_CONFIG ?? '/etc/sextant/agent.json';
const config = JSON.parse(readFileSync(configPath, 'utf8')) as AgentConfig;

let metadata: Record<string, unknown> = {};
try {
  metadata = JSON.parse(readFileSync(new URL(config.metadataUrl), 'utf8')) as Record<string, unknown>;
} catch (err) {
  log('warn', 'metadata unavailable', { url: config.metadataUrl, error: String(err) });
}

const libs: Record<string, boolean> = {};
for (const name of ['libtss2-esys.so.0', 'libtss2-tctildr.so.0', 'libtss2-mu.so.0', 'libtss2-rc.so.0']) {
  try {
    koffi.load(name);
    libs[name] = true;
  } catch {
    libs[name] = false;
  }
}

let notify: ((unsetEnv: number, state: string) => number) | undefined;
try {
  notify = koffi.load('libsystemd.so.0').func('int sd_notify(int, const char *)') as typeof notify;
} catch (err) {
  log('warn', 'libsystemd unavailable, no sd_notify', { error: String(err) });
}

const server = createServer((socket) => socket.end('sextant dev agent\n'));
server.listen(config.initPort, () => {
  log('info', 'agent listening', {
    event: 'ready',
    port: config.initPort,
    node: metadata.name,
    role: metadata.role,
    tpmLibs: libs,
    startupMs: Math.round(performance.now() - started),
    uptimeS: Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]),
  });
  notify?.(0, 'READY=1');
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    notify?.(0, 'STOPPING=1');
    server.close(() => process.exit(0));
  });
}
