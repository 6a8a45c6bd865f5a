import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { createKubeadm, KubeadmError, parseFailedPhase } from '../../../agent/kubeadm/driver.js';
import { redactSecrets } from '../../../agent/kubeadm/redact.js';
import { recordingLog } from '../../harness/recording-log.js';
import { tempDir } from '../../harness/temp-dir.js';

const TOKEN = 'abcdef.0123456789abcdef';
const KEY = 'c0ffee'.padEnd(64, '1');
const HASH = `sha256:${'e'.repeat(64)}`;

// Prints what real kubeadm prints that matters here: secrets in the join hint, phase errors on stderr.
const FAKE = `#!/bin/bash
printf '%s\\n' "$*" >> "$FAKE_DIR/argv"
args=("$@"); n=\${#args[@]}; rootfs=""
if [ "$n" -ge 2 ] && [ "\${args[n-2]}" = "--rootfs" ]; then rootfs="\${args[n-1]}"; fi
fail() { echo "[preflight] Running pre-flight checks"; echo "error execution phase $1: injected" >&2; echo "To see the stack trace of this error execute with --v=5 or higher" >&2; exit 3; }
case "$1" in
  init)
    if [ "$2" = phase ]; then echo "[upload-certs] Using certificate key:"; echo "\${FAKE_KEY:-${KEY}}"; exit 0; fi
    cfg="$rootfs$3"; stat -c %a "$cfg" > "$FAKE_DIR/mode"; cp "$cfg" "$FAKE_DIR/config.yaml"
    [ -n "$FAIL_PHASE" ] && fail "$FAIL_PHASE"
    [ -n "$HANG" ] && exec sleep 30
    echo "Your Kubernetes control-plane has initialized successfully!"
    echo "  kubeadm join 10.0.0.2:6443 --token ${TOKEN} \\\\"
    echo "	--discovery-token-ca-cert-hash ${HASH} --control-plane --certificate-key ${KEY}"
    echo "warning on stderr" >&2 ;;
  join) cfg="$rootfs$3"; cp "$cfg" "$FAKE_DIR/join.yaml"; [ -n "$FAIL_PHASE" ] && fail "$FAIL_PHASE"; echo "This node has joined the cluster" ;;
  token) echo "\${FAKE_TOKEN-${TOKEN}}" ;;
  reset) echo "[reset] Stopping the kubelet service" ;;
esac
exit 0
`;

describe('kubeadm driver (fake binary)', () => {
  const dir = tempDir('sextant-kubeadm-driver-');
  let binary: string;
  let rootfs: string;

  before(async () => {
    binary = join(dir, 'kubeadm');
    await writeFile(binary, FAKE);
    await chmod(binary, 0o755);
    rootfs = join(dir, 'rootfs');
    await mkdir(rootfs);
  });

  const argv = async () => (await readFile(join(dir, 'argv'), 'utf8')).trim().split('\n');
  const make = (env: NodeJS.ProcessEnv = {}, extra: { timeoutMs?: number; rootfs?: string | null } = {}) => {
    const log = recordingLog();
    const kubeadm = createKubeadm({
      binary,
      rootfs: extra.rootfs === null ? undefined : (extra.rootfs ?? rootfs),
      log,
      timeoutMs: extra.timeoutMs,
      env: { FAKE_DIR: dir, ...env },
    });
    return { kubeadm, log };
  };

  it('init writes a 0600 config inside the rootfs, passes the flags, removes the file, redacts secrets', async () => {
    const { kubeadm, log } = make();
    await kubeadm.init(`kind: InitConfiguration\nbootstrapTokens: [{token: ${TOKEN}}]\n`, {
      uploadCerts: true,
    });
    const [call] = (await argv()).slice(-1);
    assert.match(
      call ?? '',
      /^init --config \/tmp\/sextant-kubeadm-\w+\/config\.yaml --upload-certs --rootfs /,
    );
    assert.equal((await readFile(join(dir, 'mode'), 'utf8')).trim(), '600');
    assert.match(await readFile(join(dir, 'config.yaml'), 'utf8'), /InitConfiguration/);
    assert.deepEqual(await readdir(join(rootfs, 'tmp')), [], 'config file removed');
    const all = log.lines.join('\n');
    assert.ok(!all.includes(TOKEN), 'token never logged');
    assert.ok(!all.includes(KEY), 'certificate key never logged');
    assert.ok(all.includes(HASH), 'the public CA hash is kept');
    assert.match(all, /--token <redacted>/);
    assert.match(all, /warn warning on stderr \{"stream":"stderr"\}/);
  });

  it('join passes its config and no --upload-certs', async () => {
    const { kubeadm } = make();
    await kubeadm.join('kind: JoinConfiguration\n');
    assert.match((await argv()).at(-1) ?? '', /^join --config \/tmp\/\S+\/config\.yaml --rootfs \S+$/);
    assert.equal(await readFile(join(dir, 'join.yaml'), 'utf8'), 'kind: JoinConfiguration\n');
  });

  it('without rootfs the config goes to a private temp dir', async () => {
    const { kubeadm } = make({}, { rootfs: null });
    await kubeadm.init('kind: InitConfiguration\n');
    const call = (await argv()).at(-1) ?? '';
    assert.match(call, new RegExp(`^init --config ${tmpdir()}/sextant-kubeadm-\\w+/config\\.yaml$`));
  });

  it('reset runs reset -f', async () => {
    const { kubeadm } = make();
    await kubeadm.reset();
    assert.equal((await argv()).at(-1), `reset -f --rootfs ${rootfs}`);
  });

  it('a failing phase gives KubeadmError with the phase, exit code and output tail', async () => {
    const { kubeadm, log } = make({ FAIL_PHASE: 'control-plane/apiserver' });
    const err = await kubeadm.init('kind: InitConfiguration\n').catch((e: unknown) => e);
    assert.ok(err instanceof KubeadmError);
    assert.equal(err.phase, 'control-plane/apiserver');
    assert.equal(err.exitCode, 3);
    assert.equal(err.timedOut, false);
    assert.match(err.message, /kubeadm init failed at phase control-plane\/apiserver \(exit 3\)/);
    assert.match(err.message, /: error execution phase control-plane\/apiserver: injected$/);
    assert.ok(
      err.outputTail.some((l) => l.includes('error execution phase control-plane/apiserver: injected')),
    );
    assert.ok(log.lines.some((l) => l.startsWith('error kubeadm failed')));
    assert.deepEqual(await readdir(join(rootfs, 'tmp')), [], 'config removed on failure too');
  });

  it('a hang is killed at the timeout', async () => {
    const { kubeadm } = make({ HANG: '1' }, { timeoutMs: 300 });
    const started = Date.now();
    const err = await kubeadm.init('kind: InitConfiguration\n').catch((e: unknown) => e);
    assert.ok(err instanceof KubeadmError);
    assert.equal(err.timedOut, true);
    assert.match(err.message, /timed out after 300 ms/);
    assert.ok(Date.now() - started < 5_000);
  });

  it('a missing binary is a KubeadmError without exit code', async () => {
    const kubeadm = createKubeadm({ binary: join(dir, 'nope'), log: recordingLog() });
    const err = await kubeadm.reset().catch((e: unknown) => e);
    assert.ok(err instanceof KubeadmError);
    assert.equal(err.exitCode, undefined);
    assert.match(err.message, /ENOENT/);
  });

  it('adminKubeconfig reads <rootfs>/etc/kubernetes/admin.conf', async () => {
    const { kubeadm } = make();
    await assert.rejects(
      kubeadm.adminKubeconfig(),
      /reading admin kubeconfig .*etc\/kubernetes\/admin\.conf/,
    );
    await mkdir(join(rootfs, 'etc/kubernetes'), { recursive: true });
    await writeFile(join(rootfs, 'etc/kubernetes/admin.conf'), 'apiVersion: v1\n');
    assert.equal((await kubeadm.adminKubeconfig()).toString(), 'apiVersion: v1\n');
  });
});

describe('output parsing', () => {
  it('parseFailedPhase takes the last phase error', () => {
    assert.equal(
      parseFailedPhase(['x', 'error execution phase preflight: [preflight] Some fatal errors']),
      'preflight',
    );
    assert.equal(parseFailedPhase(['error execution phase a: 1', 'error execution phase b/c: 2']), 'b/c');
    assert.equal(parseFailedPhase(['nothing here']), undefined);
  });

  it('redactSecrets hides tokens and certificate keys but keeps CA hashes', () => {
    assert.equal(
      redactSecrets(
        `join x --token ${TOKEN} --discovery-token-ca-cert-hash ${HASH} --certificate-key ${KEY}`,
      ),
      `join x --token <redacted> --discovery-token-ca-cert-hash ${HASH} --certificate-key <redacted>`,
    );
    assert.equal(redactSecrets(KEY), '<redacted>');
    assert.equal(
      redactSecrets('[certs] Generating "ca" certificate and key'),
      '[certs] Generating "ca" certificate and key',
    );
  });
});
