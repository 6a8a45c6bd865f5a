#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root) for Sextant from this checkout: the Debian packages, the npm
# dependencies, the build, and `sextant` on PATH (npm install -g ., linked to the checkout). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "setup: run as root (apt, the VMs, network namespaces)" >&2; exit 1; }
bash scripts/install-deps.sh
[ -d node_modules/tsx ] && [ -d node_modules/koffi ] || npm ci --no-audit --no-fund
npm run --silent build
npm install -g --no-audit --no-fund . >/dev/null
echo "setup: $(command -v sextant) ($(sextant version | head -1)); next: mkdir a workspace, cd into it, sextant mini up" >&2
