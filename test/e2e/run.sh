#!/usr/bin/env bash
# Long QEMU suites (test/e2e/*.e2e.ts and test/image/*.e2e.ts): node:test through tsx, no coverage gate,
# closing with the "N passed, N failed" line CI reads. Needs root (network namespaces, image build).
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ "$#" -gt 0 ]; then files=("$@"); else
  mapfile -t files < <(find test/e2e test/image -name '*.e2e.ts' 2>/dev/null | sort)
fi
[ "${#files[@]}" -gt 0 ] || { echo "no e2e files"; echo "0 passed, 1 failed"; exit 1; }
log=$(mktemp); trap 'rm -f "$log"' EXIT
node --import tsx --test --test-concurrency=1 --test-timeout="${TEST_TIMEOUT_MS:-5400000}" \
  --test-reporter=spec "${files[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
pass=$(grep -E '^ℹ pass [0-9]+' "$log" | tail -1 | awk '{print $3}'); fail=$(grep -E '^ℹ fail [0-9]+' "$log" | tail -1 | awk '{print $3}')
pass=${pass:-0}; fail=${fail:-0}
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "$pass passed, $fail failed"
exit "$status"
