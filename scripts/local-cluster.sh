#!/usr/bin/env bash
# The README's main job (Debian 12, as root): installs what it needs, builds, then brings up a local cluster —
# 1 control plane + 2 workers in network namespaces, each with its own swtpm — inits it with the CLI, waits for
# the joins and leaves the workspace (config, secrets, state, admin kubeconfig) in ./local-cluster.
#   bash scripts/local-cluster.sh [--workspace DIR] [--workers N] [--keep] [--force]
set -euo pipefail
here=$(pwd)
cd "$(dirname "$0")/.."
repo=$(pwd)
bash scripts/install-deps.sh
[ -d node_modules/tsx ] && [ -d node_modules/koffi ] || npm ci --no-audit --no-fund
npm run --silent build
args=("$@")
# The workspace defaults to ./local-cluster where the command was run, not inside the repository's scripts/.
if ! printf '%s\n' "${args[@]+"${args[@]}"}" | grep -qx -- '--workspace'; then
  args+=(--workspace "$here/local-cluster")
fi
exec node --import tsx "$repo/scripts/local-cluster.ts" "${args[@]}"
