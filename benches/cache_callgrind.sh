#!/usr/bin/env bash
# Instructions per hit of each cache bench subject, counted by callgrind over
# HITS hits of the `measured` function (after a warm-up).
# Usage: benches/cache_callgrind.sh [HITS]   (needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
hits="${1:-100000}"
bin=$(cargo bench --bench cache_instructions --no-run 2>&1 | grep -oE 'target/[^ )]*/cache_instructions-[0-9a-f]+' | head -1)
out=$(mktemp -d)
subjects=$("$bin" --list)
printf '| subject | instructions per hit |\n|---|---|\n'
for subject in $subjects; do
  total=$(valgrind --tool=callgrind --callgrind-out-file="$out/$subject" --toggle-collect='*measured*' \
    "$bin" "$subject" "$hits" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  printf '| %s | %s |\n' "$subject" "$(awk -v t="$total" -v n="$hits" 'BEGIN { printf "%.1f", t / n }')"
done
rm -rf "$out"
