#!/usr/bin/env bash
# Builds the root filesystem of minint's sample OS: a small but real Linux
# system (Debian kernel + the modules it needs to find its root disk, a
# busybox userland, a busybox init) that the demo and the end-to-end tests
# deploy. The tree is then captured into a WIM with `minint wim capture`.
#
# usage: make-sample-rootfs.sh OUTDIR [VARIANT] [secureboot]
#   VARIANT (default A) lands in /etc/os-release so that a refresh from image
#   A to image B can be told apart.
#   secureboot adds the Secure Boot chain a Debian system carries (shim
#   signed by Microsoft, Debian's signed GRUB and MOK manager, from the host's
#   shim-signed and grub-efi-amd64-signed; the kernel is Debian's signed one
#   in every variant), so that `bootfiles` can make it boot with Secure Boot
#   on. It costs ~6 MB, so the default sample leaves it out.
#
# The sample OS prints one JSON line starting with {"event":"sample-os" on
# its console describing itself (hostname, users, setup result, marker
# files, a digest of the system tree — see tree-digest.sh), then powers off unless the kernel command line has
# sample.stay=1 (then it starts a console shell).
set -euo pipefail

out=${1:?usage: make-sample-rootfs.sh OUTDIR [VARIANT]}
variant=${2:-A}
secureboot=${3:-}
case $secureboot in ""|secureboot) ;; *) echo "make-sample-rootfs: third argument: want secureboot or nothing" >&2; exit 1;; esac
kver=${KVER:-$(ls /boot/vmlinuz-* 2>/dev/null | sed 's|.*/vmlinuz-||' | sort -V | tail -n1)}
[ -n "$kver" ] && [ -f "/boot/vmlinuz-$kver" ] || {
  echo "make-sample-rootfs: no kernel in /boot (install linux-image-amd64: scripts/setup-host.sh)" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "make-sample-rootfs: /bin/busybox missing (install busybox-static)" >&2; exit 1; }
case "$(file -b /bin/busybox 2>/dev/null || echo static)" in *dynamically*) echo "make-sample-rootfs: /bin/busybox is not static (install busybox-static)" >&2; exit 1;; esac

# Modules the sample OS needs to reach its root filesystem, with their
# dependencies in load order (modprobe resolves modules.dep for us on the host).
MODS=(virtio_pci virtio_blk virtio_scsi ahci sd_mod nvme ext4 vfat nls_cp437 nls_ascii virtio_net efivarfs)

rm -rf "$out"
mkdir -p "$out"
root=$out
mkdir -p "$root"/{bin,sbin,etc/init.d,etc/minint-sample,dev,proc,sys,run,tmp,root,home,boot,var/log,usr/bin,usr/sbin,lib/modules}
chmod 1777 "$root/tmp"; chmod 0700 "$root/root"
cp /bin/busybox "$root/bin/busybox"
for app in $(/bin/busybox --list); do
  case $app in busybox) continue;; esac
  ln -sf busybox "$root/bin/$app" 2>/dev/null || true
done
ln -sf ../bin/busybox "$root/sbin/init"

cp "/boot/vmlinuz-$kver" "$root/boot/vmlinuz-$kver"
if [ -n "$secureboot" ]; then
  for f in /usr/lib/shim/shimx64.efi.signed /usr/lib/shim/mmx64.efi.signed /usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed; do
    [ -f "$f" ] || { echo "make-sample-rootfs: $f missing (install shim-signed and grub-efi-amd64-signed: scripts/setup-host.sh)" >&2; exit 1; }
    mkdir -p "$root$(dirname "$f")"
    cp "$f" "$root$f"
  done
fi
modlist=$(modprobe -S "$kver" -a --show-depends "${MODS[@]}" | awk '$1=="insmod"{print $2}' | awk '!seen[$0]++')
mkdir -p "$root/lib/modules/$kver"
for m in $modlist; do
  rel=${m#/lib/modules/$kver/}
  mkdir -p "$root/lib/modules/$kver/$(dirname "$rel")"
  cp "$m" "$root/lib/modules/$kver/$rel"
done
cp /lib/modules/$kver/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$kver/" 2>/dev/null || true
depmod -b "$root" "$kver"

cat > "$root/etc/os-release" <<OS
NAME="minint sample OS"
ID=minint-sample
VERSION_ID="$variant"
PRETTY_NAME="minint sample OS $variant"
OS
echo "minint-sample" > "$root/etc/hostname"
printf '127.0.0.1 localhost\n' > "$root/etc/hosts"
cat > "$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
P
cat > "$root/etc/group" <<'G'
root:x:0:
users:x:100:
G
printf 'root:*:19000:0:99999:7:::\n' > "$root/etc/shadow"; chmod 0640 "$root/etc/shadow"
echo "image $variant" > "$root/etc/minint-sample/image"
cat > "$root/etc/fstab" <<'F'
proc /proc proc defaults 0 0
F
cat > "$root/etc/inittab" <<'I'
::sysinit:/etc/init.d/rcS
::respawn:-/bin/sh
::ctrlaltdel:/bin/poweroff
I
# tree-digest.sh ROOT prints one SHA-256 over the paths, types, modes,
# owners, symlink targets and file contents of the parts of the system that
# deployment must reproduce exactly (setup legitimately changes /etc and
# bootfiles /boot's loader files, so those are left out). The sample OS
# runs it at boot; tests run the same script with the same busybox on the
# source tree, so a byte, mode or owner lost anywhere on the way shows up.
cat > "$root/etc/minint-sample/tree-digest.sh" <<'TD'
#!/bin/sh
# Few processes on purpose: it also runs on an emulated CPU at boot.
bb=/bin/busybox
cd "${1:-/}" || exit 1
set -- bin sbin lib usr etc/init.d etc/minint-sample etc/os-release boot/vmlinuz-* boot/initrd.img-*
{
  $bb find "$@" -xdev | LC_ALL=C $bb sort | $bb xargs $bb stat -c '%n|%F|%a|%u|%g|%N'
  $bb find "$@" -xdev -type f | LC_ALL=C $bb sort | $bb xargs $bb sha256sum
} | $bb sha256sum | $bb cut -c1-64
TD
chmod 0755 "$root/etc/minint-sample/tree-digest.sh"
cat > "$root/etc/init.d/rcS" <<'RC'
#!/bin/sh
# The sample OS's whole boot: mount the API filesystems, say who we are, and
# (for tests and the demo) power off.
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sys /sys 2>/dev/null
mount -t devtmpfs dev /dev 2>/dev/null
mount -o remount,rw / 2>/dev/null
hostname -F /etc/hostname 2>/dev/null
# EFI variables, for `minint stage` (one-shot boots) on UEFI machines.
if [ -d /sys/firmware/efi ]; then
  modprobe efivarfs 2>/dev/null
  mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
fi
# Identity, as a real OS makes it on its first boot (systemd's machine-id
# setup, sshd's key generation): a generalized image comes up with new ones.
[ -s /etc/machine-id ] || head -c 16 /dev/urandom | md5sum | cut -c1-32 > /etc/machine-id
if [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
  mkdir -p /etc/ssh
  (umask 077; head -c 32 /dev/urandom | sha256sum | cut -c1-64 > /etc/ssh/ssh_host_ed25519_key)
  sha256sum /etc/ssh/ssh_host_ed25519_key | cut -c1-64 > /etc/ssh/ssh_host_ed25519_key.pub
fi
users=$(awk -F: '$3>=1000{printf "%s\"%s\"", (n++?",":""), $1}' /etc/passwd)
setup=absent
# minint-setup's result (answer.ResultFile).
for f in /minint/setup-result.json /var/log/minint/setup-result.json /var/lib/minint/setup-result.json; do
  [ -f "$f" ] && { setup=$(tr -d '\n' < "$f"); break; }
done
[ "$setup" = absent ] && setup='"absent"'
marker=absent
[ -f /etc/minint-deployed ] && marker=$(head -n1 /etc/minint-deployed | tr -d '"\\')
keys=0
for u in $(awk -F: '$3>=1000{print $6}' /etc/passwd); do
  [ -s "$u/.ssh/authorized_keys" ] && keys=$((keys+1))
done
tree=$(/etc/minint-sample/tree-digest.sh /)
# The firmware's SecureBoot variable (4 attribute bytes, then 1 = enforced).
secure_boot=unknown
sbvar=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
if [ ! -d /sys/firmware/efi ]; then secure_boot=bios
elif [ -f $sbvar ]; then
  # Read it whole: efivarfs does not honour od's skip.
  case $(od -An -tu1 $sbvar | tr -s ' ' | cut -d' ' -f6) in 1) secure_boot=on;; *) secure_boot=off;; esac
fi
. /etc/os-release
printf '{"event":"sample-os","time":"%s","os":"%s","version":"%s","hostname":"%s","users":[%s],"setup":%s,"kernel":"%s","marker":"%s","ssh_keys":%d,"tree":"%s","cmdline":"%s","machine_id":"%s","host_key":"%s","secure_boot":"%s"}\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ID" "$VERSION_ID" "$(hostname)" "$users" "$setup" "$(uname -r)" "$marker" "$keys" "$tree" "$(tr -d '"\\\n' < /proc/cmdline)" "$(cat /etc/machine-id)" "$(cat /etc/ssh/ssh_host_ed25519_key.pub)" "$secure_boot" > /dev/console
echo "minint sample OS $VERSION_ID is up as $(hostname)" > /dev/console
# Test hook: a disk whose file system is labelled MININT-T carries hook.sh,
# which runs here with that disk mounted at /run/minint-t (tests use it to
# change the system, run `minint stage`, report digests). It may reboot or
# power off itself; when it returns, boot goes on as usual.
if t=$(findfs LABEL=MININT-T 2>/dev/null) && [ -n "$t" ]; then
  mkdir -p /run/minint-t
  if mount -t ext4 "$t" /run/minint-t && [ -f /run/minint-t/hook.sh ]; then
    echo "sample OS: running the test hook from $t" > /dev/console
    MININT_T=/run/minint-t sh /run/minint-t/hook.sh > /dev/console 2>&1
    echo "sample OS: test hook exited $?" > /dev/console
    sync
    umount /run/minint-t 2>/dev/null
  fi
fi
if grep -q 'sample.stay=1' /proc/cmdline; then exit 0; fi
sync
poweroff -f
RC
chmod 0755 "$root/etc/init.d/rcS"

# The sample OS's initramfs: busybox, the modules above, and an init that
# finds root= (UUID=, LABEL= or a device), honours rw/ro and init=, and
# switches to it. Kept tiny and dependency-free on purpose.
ird=$(mktemp -d)
trap 'rm -rf "$ird"' EXIT
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules}
cp /bin/busybox "$ird/bin/busybox"
for app in sh mount umount insmod sleep cat switch_root findfs mkdir echo grep sed blkid; do ln -s busybox "$ird/bin/$app"; done
cp -a "$root/lib/modules/$kver" "$ird/lib/modules/"
printf '%s\n' $modlist | sed "s|^/lib/modules/$kver/||" > "$ird/modules.load"
cat > "$ird/init" <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
kver=$(sed 's/.*Linux version \([^ ]*\).*/\1/' /proc/version)
while read m; do insmod /lib/modules/$kver/$m 2>/dev/null; done < /modules.load
root=; init=/sbin/init; mode=ro
for a in $(cat /proc/cmdline); do
  case $a in root=*) root=${a#root=};; init=*) init=${a#init=};; rw) mode=rw;; ro) mode=ro;; esac
done
i=0
while :; do
  case $root in UUID=*|LABEL=*) dev=$(findfs "$root" 2>/dev/null);; *) dev=$root;; esac
  [ -n "$dev" ] && [ -b "$dev" ] && break
  i=$((i+1)); [ $i -gt 100 ] && { echo "sample initramfs: root $root not found"; exec sh; }
  sleep 0.1
done
mount -t ext4 -o $mode "$dev" /newroot || { echo "sample initramfs: cannot mount $dev"; exec sh; }
umount /sys /proc
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot "$init"
INIT
chmod 0755 "$ird/init"
(cd "$ird" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -9n) > "$root/boot/initrd.img-$kver"
echo "sample rootfs $variant${secureboot:+ (with the Secure Boot chain)}: $(du -sh "$root" | cut -f1) in $root (kernel $kver, ${#MODS[@]} modules + deps)" >&2
