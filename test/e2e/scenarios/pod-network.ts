// A pod on the worker reaches a pod on the control plane across the pod network, by IP and through a Service
// CoreDNS resolves. The workload is the e2e's netcheck image, preloaded by mini up --preload-image.
import assert from 'node:assert/strict';
import { until } from '../mini-cluster.js';
import { TEST_IMAGE } from '../netcheck-image.js';
import type { Scenario } from './scenario.js';

interface PodStatus {
  spec: { nodeName?: string };
  status: { phase?: string; podIP?: string };
}

function web(cpName: string): string {
  return `apiVersion: v1
kind: Pod
metadata: {name: e2e-web, labels: {app: e2e-web}}
spec:
  nodeSelector: {kubernetes.io/hostname: ${cpName}}
  tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]
  containers:
  - name: web
    image: ${TEST_IMAGE}
    imagePullPolicy: Never
    args: [serve, '8080']
    ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: e2e-web}
spec:
  selector: {app: e2e-web}
  ports: [{port: 80, targetPort: 8080}]
`;
}

function client(workerName: string, webIp: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'e2e-client' },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': workerName },
      restartPolicy: 'Never',
      containers: [
        {
          name: 'client',
          image: TEST_IMAGE,
          imagePullPolicy: 'Never',
          // netcheck retries each step (30 x 2 s): the route to the other node's pod range appears within seconds
          args: ['client', `${webIp}:8080`, 'e2e-web.default.svc.cluster.local'],
        },
      ],
    },
  });
}

export const podNetwork: Scenario = {
  name: 'a pod on the worker reaches a pod on the control plane; CoreDNS resolves the service',
  async run(c) {
    const cp = c.nodes.find((n) => n.role === 'control-plane');
    const worker = c.nodes.find((n) => n.role === 'worker');
    assert.ok(cp && worker, 'a control plane and a worker');
    const t0 = Date.now();
    await c.kubectl(['apply', '-f', '-'], web(cp.name));
    const pod = await until('e2e-web Running', 10 * 60_000, async () => {
      const p = JSON.parse(await c.kubectl(['get', 'pod', 'e2e-web', '-o', 'json'])) as PodStatus;
      return p.status.phase === 'Running' && p.status.podIP ? p : undefined;
    });
    assert.equal(pod.spec.nodeName, cp.name);
    await c.kubectl(['apply', '-f', '-'], client(worker.name, pod.status.podIP as string));
    const done = await until('e2e-client finished', 10 * 60_000, async () => {
      const p = JSON.parse(await c.kubectl(['get', 'pod', 'e2e-client', '-o', 'json'])) as PodStatus;
      return p.status.phase === 'Succeeded' || p.status.phase === 'Failed' ? p : undefined;
    });
    const logs = await c.kubectl(['logs', 'e2e-client']);
    console.log(`workload done in ${((Date.now() - t0) / 1000).toFixed(1)} s; client output:\n${logs}`);
    assert.equal(done.status.phase, 'Succeeded', logs);
    assert.equal(done.spec.nodeName, worker.name, 'the client ran on the worker');
    const [direct, lookup, viaService] = logs.split('---\n');
    assert.match(
      direct ?? '',
      /served by e2e-web/,
      'a pod on the worker reached the pod on the control plane',
    );
    const clusterIp = (
      await c.kubectl(['get', 'service', 'e2e-web', '-o', 'jsonpath={.spec.clusterIP}'])
    ).trim();
    assert.ok(
      clusterIp && (lookup ?? '').includes(clusterIp),
      `CoreDNS resolved the service to ${clusterIp}`,
    );
    assert.match(viaService ?? '', /served by e2e-web/, 'the service name reaches the pod');
    await c.kubectl(['delete', 'pod', 'e2e-client', 'e2e-web', '--wait=false', '--ignore-not-found']);
    await c.kubectl(['delete', 'service', 'e2e-web', '--wait=false', '--ignore-not-found']);
  },
};
