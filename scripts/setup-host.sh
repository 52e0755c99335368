#!/usr/bin/env bash
# Installs the Debian packages minint's build, demo and tests need.
# Idempotent: quiet and fast when everything is already present.
set -euo pipefail

PKGS=(
  linux-image-amd64      # the PE's kernel and modules (and the sample image's)
  isolinux syslinux syslinux-common syslinux-utils  # BIOS boot of the ISO, extlinux
  systemd-boot-efi       # linuxx64.efi.stub for the unified kernel image, systemd-bootx64.efi
  binutils               # objcopy, to assemble the UKI
  ovmf                   # UEFI firmware for QEMU (also its Secure Boot variants and snakeoil key)
  shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed  # Secure Boot chain: Microsoft-signed shim (+ MOK manager), Debian-signed GRUB
  sbsigntool openssl     # sbverify and openssl in the Secure Boot tests (the snakeoil key is encrypted)
  qemu-system-x86 qemu-utils
  qemu-user              # the chunk hash's benchmark on a CPU without AVX2 (make bench-deploy)
  xorriso                # reading ISOs back in tests
  mtools dosfstools      # FAT images without a vfat-capable host kernel
  e2fsprogs gdisk fdisk  # fsck.ext4, sgdisk -v in tests
  wimtools               # wimlib-imagex: interoperability oracle in tests only
  minisign               # signature format interoperability oracle in tests only
  debootstrap            # the Debian-sized image of scripts/bench-deploy.sh
  nginx                  # real HTTP server in tests (loopback only)
  busybox-static         # the sample OS image
  cpio xz-utils zstd kmod
  time                   # peak memory in scripts/bench-wim.sh
  xfsprogs btrfs-progs   # xfs/btrfs reference systems in the capture tests
  bash-completion zsh fish groff-base  # minint's shell completions and man pages, checked in tests
  iproute2               # network namespaces in the static-network test
  pxelinux ipxe          # network boot: lpxelinux.0 (BIOS PXE, HTTP) and iPXE's undionly.kpxe for minint netboot
  dnsmasq-base           # proxy-DHCP + TFTP in the netboot test (the binary only: no system service)
  chromium               # headless browser: the `minint serve` dashboard test (DOM, screenshot)
)
# Firmware the PE's NIC and storage drivers request (modinfo -F firmware),
# from Debian's non-free-firmware component; `minint build` reports what is
# still missing. tg3, e100 … in misc; r8169 in realtek; qed/qla in qlogic.
FIRMWARE_PKGS=(
  firmware-misc-nonfree firmware-bnx2 firmware-bnx2x firmware-realtek
  firmware-qlogic firmware-netronome firmware-netxen firmware-myricom
  firmware-cavium
)
PKGS+=("${FIRMWARE_PKGS[@]}")

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# drop_unavailable leaves out firmware packages the configured mirrors do
# not carry (another release): the build reports the firmware it lacks.
drop_unavailable() {
  local keep=() p
  for p in "${missing[@]}"; do
    if [[ " ${FIRMWARE_PKGS[*]} " == *" $p "* ]] && ! apt-cache show "$p" >/dev/null 2>&1; then
      [ "${1:-}" = quiet ] || echo "setup-host: $p is not available from the configured mirrors; skipped" >&2
      continue
    fi
    keep+=("$p")
  done
  missing=(${keep[@]+"${keep[@]}"})
}
[ ${#missing[@]} -eq 0 ] && exit 0
if apt-get indextargets --format '$(COMPONENT)' 2>/dev/null | grep -qx non-free-firmware; then
  drop_unavailable quiet
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "setup-host: missing packages: ${missing[*]}" >&2
  echo "setup-host: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "setup-host: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The firmware lives in the non-free-firmware component, which a minimal
# system's sources may lack: add it for the mirror that serves main.
fwlist=/etc/apt/sources.list.d/minint-non-free-firmware.sources
if [ ! -e "$fwlist" ] && ! apt-get indextargets --format '$(COMPONENT)' 2>/dev/null | grep -qx non-free-firmware; then
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  mirror=$(apt-get indextargets --format '$(REPO_URI) $(CODENAME) $(COMPONENT)' 2>/dev/null |
    awk -v c="$codename" '$2 == c && $3 == "main" {print $1; exit}')
  if [ -n "$mirror" ] && [ -n "$codename" ]; then
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" "$codename" >"$fwlist"
  fi
fi
apt-get update -qq >/dev/null
drop_unavailable
[ ${#missing[@]} -eq 0 ] && exit 0
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# nginx starts itself on install on Debian; tests run their own instance.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q nginx 2>/dev/null; then
  systemctl stop nginx || true
fi
# Only the daemon the package started (its pid file): other nginx processes
# on the machine may be tests' own instances.
if [ -s /run/nginx.pid ]; then kill "$(cat /run/nginx.pid)" 2>/dev/null || true; fi
