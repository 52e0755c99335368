#!/usr/bin/env bash
# Installs the Debian packages minint's build, demo and tests need.
# Idempotent: quiet and fast when everything is already present.
set -euo pipefail

PKGS=(
  linux-image-amd64      # the PE's kernel and modules (and the sample image's)
  isolinux syslinux syslinux-common syslinux-utils  # BIOS boot of the ISO, extlinux
  systemd-boot-efi       # linuxx64.efi.stub for the unified kernel image, systemd-bootx64.efi
  binutils               # objcopy, to assemble the UKI
  ovmf                   # UEFI firmware for QEMU
  qemu-system-x86 qemu-utils
  xorriso                # reading ISOs back in tests
  mtools dosfstools      # FAT images without a vfat-capable host kernel
  e2fsprogs gdisk fdisk  # fsck.ext4, sgdisk -v in tests
  wimtools               # wimlib-imagex: interoperability oracle in tests only
  nginx                  # real HTTP server in tests (loopback only)
  busybox-static         # the sample OS image
  cpio xz-utils zstd kmod
  time                   # peak memory in scripts/bench-wim.sh
  xfsprogs btrfs-progs   # xfs/btrfs reference systems in the capture tests
  bash-completion zsh fish groff-base  # minint's shell completions and man pages, checked in tests
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "setup-host: missing packages: ${missing[*]}" >&2
  echo "setup-host: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "setup-host: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# nginx starts itself on install on Debian; tests run their own instance.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q nginx 2>/dev/null; then
  systemctl stop nginx || true
fi
pkill -x nginx 2>/dev/null || true
