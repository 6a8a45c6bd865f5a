// The kubeadm stand-in's preflight checks: kubeadm v1.34's names and messages, read from the node's
// rootfs as kubeadm reads them after its chroot, and --ignore-preflight-errors turning errors into warnings.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Rootfs } from './src/paths.js';
import {
  type Check,
  dirAvailableCheck,
  fileAvailableCheck,
  fileContentCheck,
  IPV4_FORWARD,
  kubeletVersionCheck,
  kubernetesVersionCheck,
  memCheck,
  numCpuCheck,
  PreflightError,
  portOpenCheck,
  runChecks,
} from './src/preflight.js';

describe('kubeadm stand-in: preflight checks', () => {
  let dir: string;
  let held: Server;
  let heldPort: number;
  const root = (name: string) => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    return new Rootfs(d);
  };
  const put = (r: Rootfs, path: string, text: string, mode = 0o644) => {
    mkdirSync(join(r.p(path), '..'), { recursive: true });
    writeFileSync(r.p(path), text);
    chmodSync(r.p(path), mode);
  };
  const kubelet = (name: string, script: string) => {
    const r = root(name);
    put(r, '/usr/bin/kubelet', `#!/bin/sh\n${script}\n`, 0o755);
    return r;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'standin-preflight-'));
    held = createServer();
    await new Promise<void>((r) => held.listen(0, r));
    heldPort = (held.address() as { port: number }).port;
  });
  after(async () => {
    await new Promise((r) => held.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const cases: {
    name: string;
    check: () => Check;
    errors?: string[] | (() => string[]);
    warnings?: string[];
  }[] = [
    {
      name: 'one CPU is too few for a control plane',
      check: () => numCpuCheck(2, () => 1),
      errors: ['the number of available CPUs 1 is less than the required 2'],
    },
    { name: 'two CPUs are enough', check: () => numCpuCheck(2, () => 2) },
    {
      name: 'too little memory',
      check: () => memCheck(1700, () => 1024 * 1024 * 1024),
      errors: ['the system RAM (1024 MB) is less than the minimum 1700 MB'],
    },
    {
      name: 'a control plane newer than kubeadm is a warning',
      check: () => kubernetesVersionCheck('v1.32.0', 'v1.31.4'),
      warnings: [
        'Kubernetes version is greater than kubeadm version. Please consider to upgrade kubeadm. Kubernetes version: 1.32.0. Kubeadm version: 1.31.x',
      ],
    },
    {
      name: 'ip_forward missing from the node',
      check: () => fileContentCheck(root('no-proc'), IPV4_FORWARD, '1'),
      errors: ['/proc/sys/net/ipv4/ip_forward does not exist'],
    },
    {
      name: 'ip_forward off',
      check: () => {
        const r = root('fwd-off');
        put(r, IPV4_FORWARD, '0\n');
        return fileContentCheck(r, IPV4_FORWARD, '1');
      },
      errors: ['/proc/sys/net/ipv4/ip_forward contents are not set to 1'],
    },
    {
      name: 'ip_forward on',
      check: () => {
        const r = root('fwd-on');
        put(r, IPV4_FORWARD, '1\n');
        return fileContentCheck(r, IPV4_FORWARD, '1');
      },
    },
    {
      name: 'no kubelet on the node',
      check: () => kubeletVersionCheck(root('no-kubelet'), 'v1.31.4', 'v1.31.4'),
      errors: [
        `couldn't get kubelet version: cannot execute 'kubelet --version': exec: "kubelet": executable file not found in $PATH`,
      ],
    },
    {
      name: 'a kubelet newer than the control plane',
      check: () => kubeletVersionCheck(kubelet('new', 'echo Kubernetes v1.32.1'), 'v1.31.4', 'v1.31.4'),
      errors: [
        'the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: "1.32.1" Control plane version: "1.31.4"',
      ],
    },
    {
      name: 'a kubelet older than kubeadm supports',
      check: () => kubeletVersionCheck(kubelet('old', 'echo Kubernetes v1.27.3'), 'v1.31.4'),
      errors: ['Kubelet version "1.27.3" is lower than kubeadm can support. Please upgrade kubelet'],
    },
    {
      name: 'a kubelet whose version cannot be read',
      check: () => kubeletVersionCheck(kubelet('odd', 'echo hello'), 'v1.31.4'),
      errors: [`couldn't get kubelet version: Unable to parse output from Kubelet: "hello"`],
    },
    {
      name: 'a kubelet of the control plane minor',
      check: () => kubeletVersionCheck(kubelet('ok', 'echo Kubernetes v1.31.0'), 'v1.31.4', 'v1.31.4'),
    },
    {
      name: 'a port in use',
      check: () => portOpenCheck(heldPort),
      errors: () => [`Port ${heldPort} is in use`],
    },
    {
      name: 'a manifest already there',
      check: () => {
        const r = root('manifest');
        put(r, '/etc/kubernetes/manifests/etcd.yaml', 'x');
        return fileAvailableCheck(r, '/etc/kubernetes/manifests/etcd.yaml');
      },
      errors: ['/etc/kubernetes/manifests/etcd.yaml already exists'],
    },
    {
      name: 'an etcd data directory with data',
      check: () => {
        const r = root('etcd');
        put(r, '/var/lib/etcd/member/x', 'x');
        return dirAvailableCheck(r, '/var/lib/etcd');
      },
      errors: ['/var/lib/etcd is not empty'],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const r = await c.check().run();
      const errors = typeof c.errors === 'function' ? c.errors() : (c.errors ?? []);
      assert.deepEqual(r.errors ?? [], errors);
      assert.deepEqual(r.warnings ?? [], c.warnings ?? []);
    });
  }

  it('names the checks as kubeadm does', () => {
    const r = root('names');
    assert.deepEqual(
      [
        numCpuCheck(),
        memCheck(),
        fileContentCheck(r, IPV4_FORWARD, '1'),
        kubeletVersionCheck(r, 'v1.31.4'),
        portOpenCheck(10250),
        fileAvailableCheck(r, '/etc/kubernetes/kubelet.conf'),
        dirAvailableCheck(r, '/var/lib/etcd'),
      ].map((c) => c.name),
      [
        'NumCPU',
        'Mem',
        'FileContent--proc-sys-net-ipv4-ip_forward',
        'KubeletVersion',
        'Port-10250',
        'FileAvailable--etc-kubernetes-kubelet.conf',
        'DirAvailable--var-lib-etcd',
      ],
    );
  });

  it('fails on errors, listing each under "Some fatal errors occurred"; ignored ones become warnings', async () => {
    const failing = (name: string, error: string): Check => ({ name, run: () => ({ errors: [error] }) });
    const checks = [failing('NumCPU', 'too few'), failing('KubeletVersion', 'none')];
    let out = '';
    await assert.rejects(
      runChecks(checks, new Set(['numcpu']), (t) => {
        out += t;
      }),
      PreflightError,
    );
    assert.equal(
      out,
      '\t[WARNING NumCPU]: too few\n[preflight] Some fatal errors occurred:\n\t[ERROR KubeletVersion]: none\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`\n',
    );
    out = '';
    await runChecks(checks, new Set(['all']), (t) => {
      out += t;
    });
    assert.equal(out, '\t[WARNING NumCPU]: too few\n\t[WARNING KubeletVersion]: none\n');
  });
});
