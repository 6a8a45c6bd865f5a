#!/usr/bin/env bash
# Bundles the kubeadm stand-in into one self-contained executable (test use only, never shipped):
#   dist/test/kubeadm/kubeadm         node script with shebang, mode 0755
#   dist/test/kubeadm/kubeadm.tar.gz  the same file as "kubeadm" at the archive root
set -euo pipefail
cd "$(dirname "$0")/../.."
out=dist/test/kubeadm
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npx --no-install esbuild test/kubeadm/src/main.ts --bundle --platform=node --target=node20 --format=cjs \
  --log-level=warning --legal-comments=none --outfile="$tmp/bundle.cjs"
# An extensionless file is ESM under a "type": "module" package.json (this repository) and CommonJS
# elsewhere; wrapping the CommonJS bundle in a function that receives `require` runs the same in both.
{
  printf '#!/usr/bin/env node\n'
  printf '(function (require) {\n'
  cat "$tmp/bundle.cjs"
  printf '\n})(process.getBuiltinModule("node:module").createRequire(process.argv[1] || `${process.cwd()}/kubeadm`));\n'
} >"$tmp/kubeadm"
chmod 0755 "$tmp/kubeadm"
tar -C "$tmp" --owner=0 --group=0 --numeric-owner -czf "$tmp/kubeadm.tar.gz" kubeadm
mv "$tmp/kubeadm" "$out/kubeadm"
mv "$tmp/kubeadm.tar.gz" "$out/kubeadm.tar.gz"
