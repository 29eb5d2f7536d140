#!/usr/bin/env bash
# Instructions per closed-state call of each breaker bench subject, counted by
# callgrind over CALLS calls of the `measured` function (after a warm-up).
# Usage: benches/breaker_callgrind.sh [CALLS]   (needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${1:-10000}"
bin=$(cargo bench --bench breaker_instructions --no-run 2>&1 | grep -oE 'target/[^ )]*/breaker_instructions-[0-9a-f]+' | head -1)
out=$(mktemp -d)
printf '| subject | instructions per call |\n|---|---|\n'
for subject in bare fleet-count fleet-count-slow fleet-count-slow-coarse fleet-time-coarse fleet-time-slow-coarse resilience; do
  total=$(valgrind --tool=callgrind --callgrind-out-file="$out/$subject" --toggle-collect='*measured*' \
    "$bin" "$subject" "$calls" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  printf '| %s | %s |\n' "$subject" "$(awk -v t="$total" -v n="$calls" 'BEGIN { printf "%.1f", t / n }')"
done
rm -rf "$out"
