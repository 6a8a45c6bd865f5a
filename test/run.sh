#!/usr/bin/env bash
# The default test suite: unit, swtpm integration and multi-node namespace tests.
# Runs node:test through tsx under c8 so the coverage gate (.c8rc.json) is enforced,
# and closes with the plain "N passed, N failed" line CI reads.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "$#" -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
fi
if [ "${#files[@]}" -eq 0 ]; then
  echo "no test files found" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Node 20 finds only .js files by itself and treats quoted globs as paths, so the list is expanded here.
npx --no-install c8 node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-2}" \
  --test-timeout="${TEST_TIMEOUT_MS:-300000}" --test-reporter=spec "${files[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

pass=$(grep -E '^ℹ pass [0-9]+' "$log" | tail -1 | awk '{print $3}')
fail=$(grep -E '^ℹ fail [0-9]+' "$log" | tail -1 | awk '{print $3}')
pass=${pass:-0}
fail=${fail:-0}
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then
  # coverage gate or a crash outside any test: still a failure
  fail=1
fi
if [ "$pass" -eq 0 ]; then
  echo "no test ran" >&2
  status=1
  [ "$fail" -eq 0 ] && fail=1
fi
echo "$pass passed, $fail failed"
exit "$status"
