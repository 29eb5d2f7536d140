#!/usr/bin/env bash
# Instructions per call of a single balancer call and of a quorum call (a
# write of 2 of 3), counted by callgrind over CALLS calls of the `measured`
# function (after a warm-up).
# Usage: benches/balance_callgrind.sh [CALLS]   (needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${1:-10000}"
bin=$(cargo bench --bench balance_instructions --no-run 2>&1 | grep -oE 'target/[^ )]*/balance_instructions-[0-9a-f]+' | head -1)
out=$(mktemp -d)
printf '| subject | instructions per call |\n|---|---|\n'
for subject in single quorum-w2 single-least-request quorum-w2-least-request; do
  total=$(valgrind --tool=callgrind --callgrind-out-file="$out/$subject" --toggle-collect='*measured*' \
    "$bin" "$subject" "$calls" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  printf '| %s | %s |\n' "$subject" "$(awk -v t="$total" -v n="$calls" 'BEGIN { printf "%.1f", t / n }')"
done
rm -rf "$out"
