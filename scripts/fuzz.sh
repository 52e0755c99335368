#!/usr/bin/env bash
# Runs every fuzz target for a while (FUZZTIME, default 20s each), growing
# the corpora under testdata/fuzz. `go test` alone already replays the seed
# corpora; this is for hunting new crashers. New failing inputs land in
# testdata/fuzz/<target>/ and should be committed with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-20s}
for dir in $(grep -rlE '^func Fuzz' --include='*_test.go' . | xargs -n1 dirname | sort -u); do
  for f in $(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)' "$dir"/*_test.go | awk '{print $2}'); do
    echo "== $dir $f ($t)"
    go test "$dir" -run '^$' -fuzz "^$f\$" -fuzztime "$t" -fuzzminimizetime 5s
  done
done
