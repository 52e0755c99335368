#!/usr/bin/env bash
# Benchmarks minint's WIM code against wimlib-imagex on the same tree, in the
# same run, and prints a Markdown table of times, sizes, peak memory and
# ratios (minint relative to wimlib) for docs/benchmarks.md.
#
# Usage: scripts/bench-wim.sh [TREE]
#   TREE   directory to capture (default: a copy of $GOROOT/src and
#          $GOROOT/pkg/tool in tmpfs, ~190 MB of sources and binaries)
# Env:     MININT (binary, default: builds out/minint), REPS (default 3; the
#          best run counts), COMPRESS (default "none xpress lzx"),
#          WORK (scratch dir on tmpfs, default /dev/shm/minint-bench-wim)
#
# Targets on 2 cores: apply >= 1.2x wimlib's speed; capture >= 1.0x its speed
# with output <= 1.03x its size.
set -euo pipefail

cd "$(dirname "$0")/.."
REPS=${REPS:-3}
COMPRESS=${COMPRESS:-"none xpress lzx"}
WORK=${WORK:-/dev/shm/minint-bench-wim}
if [ -z "${MININT:-}" ]; then
  mkdir -p out
  go build -o out/minint ./cmd/minint
  MININT=$PWD/out/minint
fi
command -v wimlib-imagex >/dev/null || { echo "bench-wim: wimlib-imagex not installed (apt-get install wimtools)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-wim: /usr/bin/time not installed (apt-get install time)" >&2; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

TREE=${1:-}
if [ -z "$TREE" ]; then
  TREE=$WORK/tree
  GOROOT_DIR=$(go env GOROOT)
  mkdir -p "$TREE/pkg"
  cp -a "$GOROOT_DIR/src" "$TREE/src"
  cp -a "$GOROOT_DIR/pkg/tool" "$TREE/pkg/tool"
fi
TREE_MB=$(du -sm --apparent-size "$TREE" | cut -f1)
FILES=$(find "$TREE" | wc -l)

# run LABEL CMD...: runs CMD REPS times, keeps the best wall time (s) and the
# largest peak RSS (MiB) in the globals T and M. The output dir is emptied
# before each run so every apply starts from nothing.
run() {
  local label=$1 best= peak=0 i out
  shift
  for ((i = 0; i < REPS; i++)); do
    rm -rf "$WORK/out" "$WORK/cap.wim"
    sync
    /usr/bin/time -o "$WORK/time" -f '%e %M' "$@" >/dev/null 2>"$WORK/err" || {
      echo "bench-wim: $label failed:" >&2; cat "$WORK/err" >&2; exit 1; }
    out=$(tail -n1 "$WORK/time")
    local t=${out% *} m=${out#* }
    if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
    if ((m > peak)); then peak=$m; fi
  done
  T=$best
  M=$((peak / 1024))
}

mb() { awk "BEGIN{ printf \"%.1f\", $1 / 1000000 }"; }
ratio() { awk "BEGIN{ if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"-\" }"; }

echo "Tree: $TREE ($TREE_MB MB, $FILES entries), $(nproc) cores, best of $REPS, $(wimlib-imagex --version | head -n1)"
echo
echo "| operation | compression | wimlib s | minint s | speed ratio | wimlib MiB RSS | minint MiB RSS | wimlib size MB | minint size MB | size ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for c in $COMPRESS; do
  # The last timed capture of each tool is kept for apply and verify.
  run "wimlib capture $c" wimlib-imagex capture "$TREE" "$WORK/cap.wim" --unix-data --compress="$c"
  wt=$T wm=$M
  mv "$WORK/cap.wim" "$WORK/ref-wimlib.wim"
  run "minint capture $c" "$MININT" wim capture "$TREE" "$WORK/cap.wim" --compress="$c"
  mt=$T mm=$M
  mv "$WORK/cap.wim" "$WORK/ref-minint.wim"
  ws=$(stat -c %s "$WORK/ref-wimlib.wim")
  ms=$(stat -c %s "$WORK/ref-minint.wim")
  echo "| capture | $c | $wt | $mt | $(ratio "$wt" "$mt") | $wm | $mm | $(mb "$ws") | $(mb "$ms") | $(ratio "$ms" "$ws") |"

  # Both tools apply the same file (wimlib's), to tmpfs.
  run "wimlib apply $c" wimlib-imagex apply "$WORK/ref-wimlib.wim" 1 "$WORK/out" --unix-data
  wt=$T wm=$M
  run "minint apply $c" "$MININT" wim apply "$WORK/ref-wimlib.wim" 1 "$WORK/out"
  mt=$T mm=$M
  echo "| apply | $c | $wt | $mt | $(ratio "$wt" "$mt") | $wm | $mm | | | |"

  run "wimlib verify $c" wimlib-imagex verify "$WORK/ref-wimlib.wim"
  wt=$T wm=$M
  run "minint verify $c" "$MININT" wim verify "$WORK/ref-wimlib.wim"
  mt=$T mm=$M
  echo "| verify | $c | $wt | $mt | $(ratio "$wt" "$mt") | $wm | $mm | | | |"
  rm -f "$WORK/ref-wimlib.wim" "$WORK/ref-minint.wim"
done
echo
echo "speed ratio = wimlib time / minint time (above 1: minint faster); size ratio = minint size / wimlib size."
