#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh Debian 12 machine, builds, type-checks,
# lints, then runs the default suite. Closes with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm ci --no-audit --no-fund
npm run build
npm run typecheck
npm run lint
exec bash test/run.sh "$@"
