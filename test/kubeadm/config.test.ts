// The kubeadm stand-in reads --config as kubeadm v1.34 does (util/config, strictErrors=false): unknown
// fields and the deprecated v1beta3 are warnings, removed API versions and wrong types are errors.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { parseConfig } from './src/config.js';

/** Captures what the stand-in writes to stderr (klog-style warnings) while `fn` runs. */
function stderrOf<T>(fn: () => T): { result?: T; error?: unknown; stderr: string } {
  const chunks: string[] = [];
  const original = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    return { result: fn(), stderr: chunks.join('') };
  } catch (error) {
    return { error, stderr: chunks.join('') };
  } finally {
    process.stderr.write = original;
  }
}

const INIT_V1BETA4 = `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: 10.0.0.1, bindPort: 6443}
nodeRegistration: {name: cp-0}
`;

describe('kubeadm stand-in: config decoding', () => {
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env.KUBEADM_STANDIN_VERSION;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.KUBEADM_STANDIN_VERSION;
    else process.env.KUBEADM_STANDIN_VERSION = saved;
  });

  const cases: {
    name: string;
    yaml: string;
    command?: 'init' | 'join';
    warns?: string[];
    error?: string;
    check?: (c: ReturnType<typeof parseConfig>) => void;
  }[] = [
    {
      name: 'unknown fields at any depth are a warning naming each, and are dropped',
      yaml: `${INIT_V1BETA4}surprise: 1\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.31.4\napiServer: {certSANs: [a.test], extra: x}\n`,
      warns: [
        'error unmarshaling configuration schema.GroupVersionKind{Group:"kubeadm.k8s.io", Version:"v1beta4", Kind:"InitConfiguration"}: strict decoding error: unknown field "surprise"',
        'error unmarshaling configuration schema.GroupVersionKind{Group:"kubeadm.k8s.io", Version:"v1beta4", Kind:"ClusterConfiguration"}: strict decoding error: unknown field "apiServer.extra"',
      ],
      check: (c) => {
        assert.deepEqual(c.cluster!.apiServer.certSANs, ['a.test']);
        assert.equal((c.init as unknown as Record<string, unknown>).surprise, undefined);
      },
    },
    {
      name: 'v1beta3 is read with a deprecation warning and converted (args lists, timeoutForControlPlane, RSA-2048)',
      yaml: `apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: 10.0.0.1, bindPort: 6443}
nodeRegistration: {name: cp-0, kubeletExtraArgs: {node-ip: 10.0.0.1, cgroup-driver: systemd}}
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.31.4
apiServer:
  timeoutForControlPlane: 9m0s
  extraArgs: {v: "2", audit-log-path: /var/log/a.log}
`,
      warns: [
        `your configuration file uses a deprecated API spec: "kubeadm.k8s.io/v1beta3" (kind: "InitConfiguration"). Please use 'kubeadm config migrate --old-config old-config-file --new-config new-config-file', which will write the new, similar spec using a newer API version.`,
        `your configuration file uses a deprecated API spec: "kubeadm.k8s.io/v1beta3" (kind: "ClusterConfiguration").`,
      ],
      check: (c) => {
        assert.deepEqual(c.init!.nodeRegistration.kubeletExtraArgs, [
          { name: 'cgroup-driver', value: 'systemd' },
          { name: 'node-ip', value: '10.0.0.1' },
        ]);
        assert.deepEqual(c.cluster!.apiServer.extraArgs, [
          { name: 'audit-log-path', value: '/var/log/a.log' },
          { name: 'v', value: '2' },
        ]);
        assert.equal(c.init!.timeouts.controlPlaneComponentHealthCheck, 9 * 60_000);
        assert.equal(c.cluster!.encryptionAlgorithm, 'RSA-2048');
      },
    },
    {
      name: 'a v1beta3 join moves discovery.timeout to timeouts.discovery',
      command: 'join',
      yaml: `apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
nodeRegistration: {name: w-1}
discovery:
  timeout: 7m0s
  bootstrapToken: {token: abcdef.0123456789abcdef, apiServerEndpoint: "10.0.0.1:6443", unsafeSkipCAVerification: true}
`,
      warns: [`uses a deprecated API spec: "kubeadm.k8s.io/v1beta3" (kind: "JoinConfiguration")`],
      check: (c) => assert.equal(c.join!.timeouts.discovery, 7 * 60_000),
    },
    {
      name: 'a join ignores the other documents with a warning naming their group and version',
      command: 'join',
      yaml: `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
nodeRegistration: {name: w-1}
discovery:
  bootstrapToken: {token: abcdef.0123456789abcdef, apiServerEndpoint: "10.0.0.1:6443", unsafeSkipCAVerification: true}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
`,
      warns: [
        '[config] WARNING: Ignored configuration document with GroupVersionKind kubelet.config.k8s.io/v1beta1, Kind=KubeletConfiguration',
      ],
    },
    {
      name: 'a removed API version is an error naming the last kubeadm that read it',
      yaml: INIT_V1BETA4.replace('v1beta4', 'v1beta2'),
      error: `your configuration file uses an old API spec: "kubeadm.k8s.io/v1beta2" (kind: "InitConfiguration"). Please use kubeadm v1.22 instead and run 'kubeadm config migrate --old-config old-config-file --new-config new-config-file', which will write the new, similar spec using a newer API version.`,
    },
    {
      name: 'a wrong type is still an error',
      yaml: `${INIT_V1BETA4}skipPhases: addon\n`,
      error:
        'json: cannot unmarshal string into Go struct field InitConfiguration.skipPhases of type []string',
    },
    {
      name: 'a wrong type in v1beta3 names the v1beta3 type',
      yaml: `apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer: {extraArgs: [a]}\n`,
      error: 'of type map[string]string',
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const out = stderrOf(() => parseConfig(c.yaml, c.command ?? 'init'));
      if (c.error) {
        assert.ok(out.error instanceof Error, `expected an error, got ${JSON.stringify(out.result)}`);
        assert.ok(out.error.message.includes(c.error), out.error.message);
        return;
      }
      assert.equal(out.error, undefined, String(out.error));
      for (const w of c.warns ?? [])
        assert.ok(out.stderr.includes(w), `missing warning: ${w}\n${out.stderr}`);
      if (!c.warns) assert.equal(out.stderr, '');
      c.check?.(out.result!);
    });
  }
});
