#!/usr/bin/env bash
# Runs node:test through tsx and closes with the plain "N passed, N failed" line CI reads.
#
#   bash test/run.sh               the full suite (unit, swtpm integration, multi-node namespace tests) under c8:
#                                  the coverage gate (.c8rc.json) applies here and only here
#   bash test/run.sh --unit        the in-process unit tier: no root, no swtpm, no network namespace, seconds
#   bash test/run.sh FILE...       the given files, no coverage gate (a part of the suite cannot meet a
#                                  whole-tree threshold); COVERAGE=1 adds a coverage summary without the gate
#
# Partial runs write no coverage/ data unless asked, so they never clobber a full run's report in the same tree.
set -uo pipefail
cd "$(dirname "$0")/.."

# The unit tier: every test file except those marked `// @tier system: <what it needs>` (root, swtpm, network
# namespaces, the Kubernetes build). A file says it needs more, so a new pure test is in the unit tier by default.
SYSTEM_MARKER='^// @tier system: '

mode=full
files=()
if [ "${1:-}" = "--unit" ]; then
  mode=unit
  shift
  mapfile -t found < <(find test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
  for f in "${found[@]}"; do
    grep -qE "$SYSTEM_MARKER" "$f" || files+=("$f")
  done
elif [ "$#" -gt 0 ]; then
  mode=partial
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
# In-process tests finish in milliseconds: a minute each means one hangs (a fake that never answers), say so early.
default_timeout=300000
[ "$mode" = unit ] && default_timeout=60000
runner=(node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-2}"
  --test-timeout="${TEST_TIMEOUT_MS:-$default_timeout}" --test-reporter=spec "${files[@]}")
if [ "$mode" = full ]; then
  npx --no-install c8 "${runner[@]}" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
elif [ "${COVERAGE:-0}" = 1 ]; then
  # A private temp and report directory: a concurrent full run keeps its own data.
  cov=$(mktemp -d)
  trap 'rm -f "$log"; rm -rf "$cov"' EXIT
  npx --no-install c8 --check-coverage=false --all=false --temp-directory "$cov/tmp" --report-dir "$cov" \
    --reporter text-summary "${runner[@]}" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
else
  "${runner[@]}" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
fi

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
