import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { caCertHash } from '../../../agent/kubeadm/ca-hash.js';
import { KubeconfigError, rewriteKubeconfigServer } from '../../../agent/kubeadm/kubeconfig.js';
import { tempDir } from '../../harness/temp-dir.js';

const KUBECONFIG = `apiVersion: v1
kind: Config
# written by kubeadm
clusters:
- cluster:
    certificate-authority-data: TFMwdExTMUNSVWRKVGlCRFJWSlVTVVpKUTBGVVJTMHRMUzB0Q2c9PQ==
    server: https://10.0.0.2:6443
  name: sextant
contexts:
- context:
    cluster: sextant
    user: kubernetes-admin
  name: kubernetes-admin@sextant
current-context: kubernetes-admin@sextant
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
`;

describe('rewriteKubeconfigServer', () => {
  const dir = tempDir('sextant-kubeconfig-');

  it('points every cluster at the endpoint and keeps the rest', async () => {
    const out = rewriteKubeconfigServer(Buffer.from(KUBECONFIG), 'api.sextant.example:6443');
    const parsed = parse(out.toString());
    assert.equal(parsed.clusters[0].cluster.server, 'https://api.sextant.example:6443');
    assert.equal(parsed.users[0].user['client-key-data'], 'a2V5');
    assert.match(out.toString(), /# written by kubeadm/);
    const f = join(dir, 'admin.conf');
    await writeFile(f, out, { mode: 0o600 });
    const server = execFileSync('kubectl', [
      'config',
      'view',
      '--kubeconfig',
      f,
      '-o',
      'jsonpath={.clusters[0].cluster.server}',
    ]);
    assert.equal(server.toString(), 'https://api.sextant.example:6443');
  });

  it('brackets IPv6 endpoints as given', () => {
    const out = rewriteKubeconfigServer(Buffer.from(KUBECONFIG), '[fd00::2]:6443');
    assert.equal(parse(out.toString()).clusters[0].cluster.server, 'https://[fd00::2]:6443');
  });

  const bad: [string, string, RegExp][] = [
    [KUBECONFIG, '10.0.0.2', /endpoint: missing ":port"/],
    [KUBECONFIG, 'bad host:1', /endpoint: "bad host" is neither an IP address nor a host name/],
    ['a: [unclosed', '10.0.0.2:6443', /not valid YAML/],
    ['- a list', '10.0.0.2:6443', /mapping at the top level/],
    ['apiVersion: v2\nkind: Config\n', '10.0.0.2:6443', /apiVersion: expected v1/],
    ['apiVersion: v1\nkind: Pod\n', '10.0.0.2:6443', /kind: expected Config/],
    ['apiVersion: v1\nkind: Config\nclusters: []\n', '10.0.0.2:6443', /non-empty list/],
    [
      'apiVersion: v1\nkind: Config\nclusters: [x]\n',
      '10.0.0.2:6443',
      /clusters\[0\]: expected \{name, cluster\}/,
    ],
    [
      'apiVersion: v1\nkind: Config\nclusters: [{name: a, cluster: {}}]\n',
      '10.0.0.2:6443',
      /server: missing/,
    ],
    ['apiVersion: v1\napiVersion: v1\n', '10.0.0.2:6443', /not valid YAML/],
  ];
  for (const [doc, endpoint, why] of bad) {
    it(`refuses ${why.source}`, () => {
      assert.throws(
        () => rewriteKubeconfigServer(Buffer.from(doc), endpoint),
        (e: unknown) => {
          return e instanceof KubeconfigError && why.test(e.message);
        },
      );
    });
  }
});

describe('caCertHash', () => {
  const dir = tempDir('sextant-cahash-');

  /** The recipe from the kubeadm docs: openssl x509 -pubkey | openssl rsa/pkey -pubin -outform der | sha256. */
  const opensslHash = (certFile: string) =>
    execFileSync('bash', [
      '-c',
      `openssl x509 -pubkey -noout -in '${certFile}' | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex | sed 's/^.* //'`,
    ])
      .toString()
      .trim();

  for (const [name, keyArgs] of [
    ['RSA', ['-newkey', 'rsa:2048']],
    ['ECDSA P-256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']],
  ] as const) {
    it(`matches the kubeadm/openssl recipe for an ${name} CA`, async () => {
      const cert = join(dir, `${name.replace(/\W/g, '')}.crt`);
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          ...keyArgs,
          '-nodes',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          cert,
          '-subj',
          '/CN=kubernetes',
          '-days',
          '1',
        ],
        { stdio: 'ignore' },
      );
      const pem = await readFile(cert);
      assert.equal(caCertHash(pem), `sha256:${opensslHash(cert)}`);
      assert.equal(caCertHash(pem.toString()), caCertHash(pem));
    });
  }

  it('refuses what is not a certificate', () => {
    assert.throws(
      () => caCertHash('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'),
      /CA certificate/,
    );
  });
});
