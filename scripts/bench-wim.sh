#!/usr/bin/env bash
# Benchmarks minint's WIM code against wimlib-imagex on the same tree, in the
# same run, and prints a Markdown table of times, sizes, peak memory and
# ratios (minint relative to wimlib) for docs/benchmarks.md. Wall time is
# the target's measure; CPU time (user+sys, all threads) is printed too
# because it moves much less than wall time when other work shares the
# machine.
#
# Usage: scripts/bench-wim.sh [TREE]
#   TREE   directory to capture (default: a copy of $GOROOT/src and
#          $GOROOT/pkg/tool in tmpfs, ~190 MB of sources and binaries)
# Env:     MININT (binary, default: builds out/minint), REPS (default 3; the
#          best run counts), COMPRESS (default "none xpress lzx"),
#          WORK (scratch dir on tmpfs, default /dev/shm/minint-bench-wim),
#          OPS (default "capture apply verify"; without capture, the WIM
#          to apply and verify is made by wimlib, untimed), LOAD (default
#          0: that many busy processes, `yes >/dev/null`, run throughout,
#          to measure on a busy machine)
#
# Targets on 2 cores: apply >= 1.2x wimlib's speed; capture >= 1.0x its speed
# with output <= 1.03x its size.
set -euo pipefail

cd "$(dirname "$0")/.."
REPS=${REPS:-3}
COMPRESS=${COMPRESS:-"none xpress lzx"}
OPS=${OPS:-"capture apply verify"}
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
busy=()
trap 'kill "${busy[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for ((i = 0; i < ${LOAD:-0}; i++)); do
  yes >/dev/null &
  busy+=($!)
done

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

# timed OUT CMD...: removes OUT (a WIM or an apply directory), runs CMD and
# leaves its wall time (s), peak RSS (KiB) and CPU time (s) in TT, TM, TC.
timed() {
  local out=$1
  shift
  rm -rf "$out"
  sync
  /usr/bin/time -o "$WORK/time" -f '%e %M %U %S' "$@" >/dev/null 2>"$WORK/err" || {
    echo "bench-wim: $* failed:" >&2; cat "$WORK/err" >&2; exit 1; }
  local u s
  read -r TT TM u s < <(tail -n1 "$WORK/time")
  TC=$(awk "BEGIN{ printf \"%.2f\", $u + $s }")
}

# pair OUT_W OUT_M WIMLIB_ARRAY MININT_ARRAY: runs both commands REPS times,
# alternating so that changes in machine load hit both alike, and keeps the
# best wall time, the largest peak RSS (MiB) and the least CPU time of each
# in WT WM WC and MT MM MC.
pair() {
  local -n wcmd=$3 mcmd=$4
  local i
  WT= MT= WC= MC= WM=0 MM=0
  for ((i = 0; i < REPS; i++)); do
    timed "$1" "${wcmd[@]}"
    if [ -z "$WT" ] || awk "BEGIN{exit !($TT < $WT)}"; then WT=$TT; fi
    if [ -z "$WC" ] || awk "BEGIN{exit !($TC < $WC)}"; then WC=$TC; fi
    if ((TM / 1024 > WM)); then WM=$((TM / 1024)); fi
    timed "$2" "${mcmd[@]}"
    if [ -z "$MT" ] || awk "BEGIN{exit !($TT < $MT)}"; then MT=$TT; fi
    if [ -z "$MC" ] || awk "BEGIN{exit !($TC < $MC)}"; then MC=$TC; fi
    if ((TM / 1024 > MM)); then MM=$((TM / 1024)); fi
  done
}

mb() { awk "BEGIN{ printf \"%.1f\", $1 / 1000000 }"; }
ratio() { awk "BEGIN{ if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"-\" }"; }

echo "Tree: $TREE ($TREE_MB MB, $FILES entries), $(nproc) cores, best of $REPS, $(wimlib-imagex --version | head -n1), ${LOAD:-0} busy processes, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| operation | compression | wimlib s | minint s | speed ratio | wimlib CPU s | minint CPU s | CPU ratio | wimlib MiB RSS | minint MiB RSS | wimlib size MB | minint size MB | size ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for c in $COMPRESS; do
  # The last timed capture of each tool is kept for apply and verify.
  if [[ " $OPS " == *" capture "* ]]; then
    W=(wimlib-imagex capture "$TREE" "$WORK/ref-wimlib.wim" --unix-data --compress="$c")
    M=("$MININT" wim capture "$TREE" "$WORK/ref-minint.wim" --compress="$c")
    pair "$WORK/ref-wimlib.wim" "$WORK/ref-minint.wim" W M
    ws=$(stat -c %s "$WORK/ref-wimlib.wim")
    ms=$(stat -c %s "$WORK/ref-minint.wim")
    echo "| capture | $c | $WT | $MT | $(ratio "$WT" "$MT") | $WC | $MC | $(ratio "$WC" "$MC") | $WM | $MM | $(mb "$ws") | $(mb "$ms") | $(ratio "$ms" "$ws") |"
  else
    wimlib-imagex capture "$TREE" "$WORK/ref-wimlib.wim" --unix-data --compress="$c" >/dev/null
  fi

  # Both tools apply the same file (wimlib's), to tmpfs.
  if [[ " $OPS " == *" apply "* ]]; then
    W=(wimlib-imagex apply "$WORK/ref-wimlib.wim" 1 "$WORK/out" --unix-data)
    M=("$MININT" wim apply "$WORK/ref-wimlib.wim" 1 "$WORK/out")
    pair "$WORK/out" "$WORK/out" W M
    echo "| apply | $c | $WT | $MT | $(ratio "$WT" "$MT") | $WC | $MC | $(ratio "$WC" "$MC") | $WM | $MM | | | |"
  fi

  if [[ " $OPS " == *" verify "* ]]; then
    W=(wimlib-imagex verify "$WORK/ref-wimlib.wim")
    M=("$MININT" wim verify "$WORK/ref-wimlib.wim")
    pair "$WORK/none" "$WORK/none" W M
    echo "| verify | $c | $WT | $MT | $(ratio "$WT" "$MT") | $WC | $MC | $(ratio "$WC" "$MC") | $WM | $MM | | | |"
  fi
  rm -rf "$WORK/ref-wimlib.wim" "$WORK/ref-minint.wim" "$WORK/out"
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "speed ratio = wimlib time / minint time (above 1: minint faster); CPU ratio likewise with CPU time (user+sys); size ratio = minint size / wimlib size."
