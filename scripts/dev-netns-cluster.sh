#!/usr/bin/env bash
# DEVELOPER TOOL, NOT A KUBERNETES: its API server is the kubeadm stand-in's (test/kubeadm); `sextant mini up` is the real cluster.
# Agents in network namespaces, each with its own swtpm: 1 control plane + N workers, init through the CLI, joins by
# mDNS, the workspace (config, secrets, state, stand-in kubeconfig) left in ./dev-netns-cluster. Debian 12, as root.
#   bash scripts/dev-netns-cluster.sh [--workspace DIR] [--workers N] [--keep] [--force] [--help]
set -euo pipefail
usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; }
here=$(pwd)
args=("$@")
ws="$here/dev-netns-cluster"
force=0
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --help | -h) usage; exit 0 ;;
    --force) force=1 ;;
    --workspace) ws=$(realpath -m "${args[i + 1]:-}") ;;
  esac
done
# refused before anything is installed or built: the check costs nothing here
if [ "$force" = 0 ] && { [ -e "$ws/sextant-state.yaml" ] || [ -e "$ws/sextant-admin.conf" ]; }; then
  echo "$ws already holds an initialized cluster; pass --force to replace it, or --workspace DIR" >&2
  exit 1
fi
cd "$(dirname "$0")/.."
repo=$(pwd)
bash scripts/install-deps.sh
[ -d node_modules/tsx ] && [ -d node_modules/koffi ] || npm ci --no-audit --no-fund
[ -d gen/proto ] || npm run --silent gen # the sources run through tsx: only the generated gRPC code is needed
if ! printf '%s\n' "${args[@]+"${args[@]}"}" | grep -qx -- '--workspace'; then
  args+=(--workspace "$ws")
fi
exec node --import tsx "$repo/scripts/dev-netns-cluster.ts" "${args[@]}"
