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
# The real Kubernetes components the suite runs (kube-apiserver + etcd in a namespace, the image archives): built
# from their Go modules once per machine (cold ~15-19 min on 2 cores, seconds when cached), before the tests that
# would otherwise start the cold build inside their own time limits.
bash scripts/build-kubernetes.sh >/dev/null
bash scripts/build-kubernetes-images.sh >/dev/null
exec bash test/run.sh "$@"
