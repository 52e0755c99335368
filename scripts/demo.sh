#!/usr/bin/env bash
# minint's demo: a "new computer" deployed end to end in a QEMU VM.
#
#   sample OS root -> minint wim capture (LZX) -> signed package -> boot ISO
#   with the PE, the task sequence and the package -> VM with a blank disk
#   boots the ISO -> the PE partitions, verifies, applies, hands over the
#   answer file, writes boot files and reboots -> the deployed OS runs
#   first-boot setup and reports itself.
#
# usage: scripts/demo.sh [--uefi]      (default: SeaBIOS, MBR)
# Env: MININT (default out/minint, built when missing), DEMO_DIR (default
# out/demo), MININT_CACHE (PE build cache). Exit status 0 only when the
# deployed OS booted and setup succeeded.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
firmware=bios
case "${1:-}" in
  --uefi) firmware=uefi ;;
  "") ;;
  *) echo "usage: $0 [--uefi]" >&2; exit 2 ;;
esac
minint=${MININT:-out/minint}
work=${DEMO_DIR:-out/demo}
mkdir -p "$work"
t0=$(date +%s.%N)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

if [ ! -x "$minint" ]; then
  say "building minint"
  go build -o "$minint" ./cmd/minint
fi

say "1. sample OS root file system"
stamp="$work/rootfs.stamp"
want=$(cat scripts/make-sample-rootfs.sh /proc/sys/kernel/osrelease | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$work/rootfs" ]; then
  echo "reusing $work/rootfs"
else
  bash scripts/make-sample-rootfs.sh "$work/rootfs" A
  echo "$want" > "$stamp"
fi

say "2. capture it into a WIM (LZX)"
rm -rf "$work/pkg"; mkdir -p "$work/pkg"
"$minint" wim capture --compress lzx "$work/rootfs" "$work/pkg/sample.wim"

say "3. signing key and signed package"
"$minint" keygen --force "$work/demo"
"$minint" package create --key "$work/demo.key" --name sample-os "$work/pkg"

say "4. boot ISO: PE (with the public key) + sequence + package"
"$minint" sequence check scripts/demo-sequence.yaml
"$minint" iso -o "$work/demo.iso" --key "$work/demo.pub" --build-dir "$work/pe" \
  --sequence scripts/demo-sequence.yaml --cmdline "minint.events=serial" \
  --package "$work/pkg"

say "5. new computer: $firmware firmware, blank 512 MiB disk, the ISO in its CD drive"
rm -f "$work/disk.img"
tboot=$(date +%s.%N)
set +e
"$minint" qemu --iso "$work/demo.iso" --firmware "$firmware" --disk "$work/disk.img:512M" \
  --disk-first --allow-reboot --until exit --timeout 10m \
  --log "$work/console.log" --json-events "$work/events.json"
qrc=$?
set -e

ev() { # ev KIND [OP [STATE]] -> the first matching event line
  grep -a "\"event\":\"$1\"" "$work/events.json" | { if [ -n "${2:-}" ]; then grep -a "\"op\":\"$2\""; else cat; fi; } |
    { if [ -n "${3:-}" ]; then grep -a "\"state\":\"$3\""; else cat; fi; } | head -n1
}
evtime() { # evtime LINE -> seconds since the epoch
  local t
  t=$(printf '%s' "$1" | sed -n 's/.*"time":"\([^"]*\)".*/\1/p')
  [ -n "$t" ] && date -d "$t" +%s.%N
}

say "6. result"
os=$(ev sample-os)
if [ -z "$os" ]; then
  echo "FAILED: the deployed OS did not report (QEMU exit $qrc). Last console lines:" >&2
  tail -n 25 "$work/console.log" >&2
  grep -a '"state":"failed"' "$work/events.json" | head -n 3 >&2 || true
  exit 1
fi
field() { printf '%s' "$os" | sed -n "s/.*\"$1\":\(\"[^\"]*\"\|\[[^]]*\]\|[0-9]*\).*/\1/p" | sed 's/^"\(.*\)"$/\1/'; }
ok=$(printf '%s' "$os" | grep -o '"setup":{ *"ok": *[a-z]*' | sed 's/.*: *//')
printf '  deployed OS      %s %s, kernel %s\n' "$(field os)" "$(field version)" "$(field kernel)"
printf '  hostname         %s\n' "$(field hostname)"
printf '  users            %s (with %s SSH key file(s))\n' "$(field users)" "$(field ssh_keys)"
printf '  marker file      %s\n' "$(field marker)"
printf '  first-boot setup %s\n' "${ok:-absent}"
printf '  system tree      %s\n' "$(field tree)"
src=$("$work/rootfs/etc/minint-sample/tree-digest.sh" "$work/rootfs")
if [ "$src" = "$(field tree)" ]; then
  echo "                   = the captured tree's digest (bytes, modes, owners, links identical)"
else
  echo "                   != the captured tree's digest $src" >&2
  ok=false
fi

say "7. where the time went"
banner=$(ev banner); seqstart=$(ev sequence "" start)
row() { printf '  %-34s %6ss\n' "$1" "$2"; }
step() { # step OP... -> summed seconds from each step's start to its done
  local tot=0 s e
  for op in "$@"; do
    s=$(evtime "$(ev step "$op" start)") || true
    e=$(evtime "$(ev step "$op" done)") || true
    [ -n "$s" ] && [ -n "$e" ] && tot=$(awk -v t="$tot" -v a="$s" -v b="$e" 'BEGIN{print t + b - a}')
  done
  printf '%.1f' "$tot"
}
pe=$(ev boot "" done) # the PE's own phases, by the kernel's clock
bootf() { printf '%s' "$pe" | sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }
[ -n "$banner" ] && row "power-on -> PE banner" "$(secs "$tboot" "$(evtime "$banner")")"
if [ -n "$pe" ]; then
  row "  of which kernel start -> PE init" "$(printf '%.1f' "$(bootf kernel_to_init)")"
  for ph in modules random network devices medium inventory; do
    row "PE: $ph" "$(printf '%.1f' "$(bootf "$ph")")"
  done
fi
[ -n "$banner" ] && [ -n "$seqstart" ] && row "PE banner -> first task step" "$(secs "$(evtime "$banner")" "$(evtime "$seqstart")")"
for op in partition-bios partition-uefi format mount; do
  [ -n "$(ev step "$op" done)" ] && row "$op" "$(step "$op")"
done
row "fetch (signature; chunks checked in apply)" "$(step fetch)"
row "apply image (each chunk verified)" "$(step apply-image)"
row "setup (answer file) + boot files" "$(step setup bootfiles)"
rb=$(ev step reboot done); sd=$(ev setup "" done)
[ -n "$rb" ] && [ -n "$sd" ] && row "reboot -> first-boot setup done" "$(secs "$(evtime "$rb")" "$(evtime "$sd")")"
[ -n "$sd" ] && row "setup done -> OS reported" "$(secs "$(evtime "$sd")" "$(evtime "$os")")"
row "whole deployment (power-on -> OS up)" "$(secs "$tboot" "$(evtime "$os")")"
row "demo total (incl. build steps)" "$(secs "$t0" "$(date +%s.%N)")"

if [ "$ok" != true ]; then
  echo "FAILED: first-boot setup did not succeed" >&2
  exit 1
fi
echo
echo "demo OK: the new computer was deployed and its first boot set it up."
