#!/usr/bin/env bash
# Runs every benchmark (test/bench/*.bench.ts), or the ones named, one after another so they do not compete
# for the CPU. Each prints its figures next to the baseline it measured in the same run.
#   npm run bench                      # all
#   npm run bench -- test/bench/tpm.bench.ts
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ "$#" -gt 0 ]; then files=("$@"); else mapfile -t files < <(find test/bench -name '*.bench.ts' | sort); fi
failed=0
for f in "${files[@]}"; do
  echo "== $f"
  if ! npx --no-install tsx "$f"; then
    echo "benchmark failed: $f" >&2
    failed=$((failed + 1))
  fi
done
echo "$(( ${#files[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
