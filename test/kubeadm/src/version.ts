/** The version this stand-in claims to be; KUBEADM_STANDIN_VERSION overrides it for version-skew tests. */
export function standinVersion(): string {
  return process.env.KUBEADM_STANDIN_VERSION || 'v1.31.4';
}

export function versionInfo(): Record<string, string> {
  const v = standinVersion();
  const m = /^v(\d+)\.(\d+)/.exec(v);
  return {
    major: m?.[1] ?? '1',
    minor: m?.[2] ?? '31',
    gitVersion: v,
    gitCommit: 'a78aa47129b8539636eb86a9d00e31b2720fe06b',
    gitTreeState: 'clean',
    buildDate: '2024-12-10T18:43:39Z',
    goVersion: 'go1.22.9',
    compiler: 'gc',
    platform: `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`,
  };
}

export function versionCommand(output: string | undefined): string {
  const i = versionInfo();
  switch (output) {
    case undefined:
    case '':
      return `kubeadm version: &version.Info{Major:"${i.major}", Minor:"${i.minor}", GitVersion:"${i.gitVersion}", GitCommit:"${i.gitCommit}", GitTreeState:"${i.gitTreeState}", BuildDate:"${i.buildDate}", GoVersion:"${i.goVersion}", Compiler:"${i.compiler}", Platform:"${i.platform}"}`;
    case 'short':
      return i.gitVersion!;
    case 'json':
      return JSON.stringify({ clientVersion: i }, null, 2);
    case 'yaml':
      return `clientVersion:\n${Object.entries(i)
        .map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`)
        .join('\n')}`;
    default:
      throw new Error(`invalid output format: ${output}`);
  }
}
