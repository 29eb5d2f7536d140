#!/usr/bin/env bash
# Instructions per request through the whole stack and through each layer
# alone (configured as in the stack), counted by callgrind over CALLS calls of
# the `measured` function (after a warm-up), and the stack's miss path against
# the sum of its layers' added costs.
# Usage: benches/stack_callgrind.sh [CALLS]   (needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${1:-10000}"
bin=$(cargo bench --bench stack_instructions --no-run 2>&1 | grep -oE 'target/[^ )]*/stack_instructions-[0-9a-f]+' | head -1)
out=$(mktemp -d)
declare -A per
printf '| subject | instructions per request | added over bare |\n|---|---|---|\n'
for subject in bare cache-hit cache-miss retry shard balance breaker timeout stack-hit stack-miss; do
  total=$(valgrind --tool=callgrind --callgrind-out-file="$out/$subject" --toggle-collect='*measured*' \
    "$bin" "$subject" "$calls" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  per[$subject]=$(awk -v t="$total" -v n="$calls" 'BEGIN { printf "%.1f", t / n }')
  printf '| %s | %s | %s |\n' "$subject" "${per[$subject]}" \
    "$(awk -v a="${per[$subject]}" -v b="${per[bare]}" 'BEGIN { printf "%.1f", a - b }')"
done
awk -v b="${per[bare]}" -v s="${per[stack-miss]}" -v c="${per[cache-miss]}" -v r="${per[retry]}" \
  -v sh="${per[shard]}" -v ba="${per[balance]}" -v br="${per[breaker]}" -v t="${per[timeout]}" 'BEGIN {
  sum = (c - b) + (r - b) + (sh - b) + (ba - b) + (br - b) + (t - b)
  printf "\nmiss path: the stack adds %.1f, its layers alone add %.1f in sum: %.2fx\n", s - b, sum, (s - b) / sum
}'
rm -rf "$out"
