#!/usr/bin/env bash
# Builds the small guest the state-disk VM test boots: Debian 12's cloud kernel (its dm-crypt, dm-integrity and
# crypto modules) and an initramfs holding busybox, the host's Node, libcryptsetup and mke2fs with their libraries,
# and the guest script bundled with the real agent/disk code (esbuild; koffi beside it).
#   test/disk/build-guest.sh OUT_DIR   -> OUT_DIR/vmlinuz, OUT_DIR/initrd.cpio
# Needs root for nothing; downloads one Debian package (the kernel) through apt-get download when not cached.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
kpkg=${SEXTANT_GUEST_KERNEL:-linux-image-6.1.0-57-cloud-amd64}
cache=${SEXTANT_CACHE:-/var/cache/sextant}/disk-guest
mkdir -p "$cache"
deb=$(ls "$cache/$kpkg"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
  (cd "$cache" && apt-get download -q "$kpkg" >&2)
  deb=$(ls "$cache/$kpkg"_*.deb | head -1)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/k"
kver=$(ls "$work/k/lib/modules" | head -1)
cp "$work/k/boot/vmlinuz-$kver" "$out/vmlinuz"

root=$work/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,run,tmp,mnt,lib64,usr/lib/x86_64-linux-gnu,opt/disk} "$root/lib/modules/$kver"
cp /usr/bin/busybox "$root/bin/busybox"
for a in sh mount umount insmod modprobe poweroff mkdir cat sleep dd sync; do ln -s busybox "$root/bin/$a"; done
cp /usr/bin/node "$root/bin/node"
cp /usr/sbin/mke2fs "$root/sbin/mke2fs"
libs=$( (ldd /usr/bin/node; ldd /usr/sbin/mke2fs; ldd /usr/lib/x86_64-linux-gnu/libcryptsetup.so.12) | awk '/=>/{print $3}' | sort -u)
for l in $libs /usr/lib/x86_64-linux-gnu/libcryptsetup.so.12; do cp -L "$l" "$root/usr/lib/x86_64-linux-gnu/"; done
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
ln -s ../usr/lib/x86_64-linux-gnu "$root/lib/x86_64-linux-gnu"

# modules: device-mapper crypt/integrity, their crypto, virtio disks, ext4
mods="$work/k/lib/modules/$kver"
(cd "$mods" && find kernel/drivers/md kernel/drivers/block kernel/drivers/virtio kernel/crypto kernel/arch/x86/crypto \
  kernel/lib kernel/fs/ext4 kernel/fs/jbd2 kernel/fs/mbcache.ko kernel/drivers/firmware -name '*.ko' 2>/dev/null | cpio -pdm --quiet "$root/lib/modules/$kver" || true)
cp "$mods"/modules.{order,builtin} "$root/lib/modules/$kver/" 2>/dev/null || true
busybox depmod -b "$root" "$kver"

bash -c "cd '$repo' && npx --no-install esbuild test/disk/guest/state-disk-guest.ts --bundle --platform=node --format=esm \
  --target=node20 --external:koffi --log-level=warning \
  --banner:js=\"import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);\" \
  --outfile='$root/opt/disk/guest.mjs'"
echo '{"type":"module","private":true}' >"$root/opt/disk/package.json"
mkdir -p "$root/opt/disk/node_modules/@koromix"
tar -C "$repo/node_modules" -cf - --exclude=koffi/doc --exclude=koffi/vendor --exclude='koffi/src/koffi/src/*.cc' \
  --exclude='koffi/src/koffi/src/*.hh' --exclude='koffi/src/koffi/src/abi' koffi | tar -C "$root/opt/disk/node_modules" -xf -
tar -C "$repo/node_modules/@koromix" -cf - --exclude=musl_x64 koffi-linux-x64 | tar -C "$root/opt/disk/node_modules/@koromix" -xf -

cat >"$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs run /run
for m in virtio_pci virtio_blk dm_mod dm_crypt dm_integrity xts aesni_intel sha256_generic hmac authenc crc32c_generic ext4 qemu_fw_cfg; do
  modprobe "$m" 2>/dev/null
done
mkdir -p /run/disk
cmd=$(cat /sys/firmware/qemu_fw_cfg/by_name/opt/sextant/disk-test/raw 2>/dev/null)
echo "DISK-GUEST start mode=$cmd"
cd /opt/disk && node guest.mjs $cmd
echo "DISK-GUEST exit=$?"
sync
poweroff -f
INIT
chmod 755 "$root/init"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) >"$out/initrd.cpio"
echo "build-guest: kernel $kver, initrd $(du -h "$out/initrd.cpio" | cut -f1)" >&2
