#!/usr/bin/env bash
# Prepares (once, then cached) the Debian trixie "tools tree" mkosi runs from: bookworm's mkosi 14 cannot build a
# bootable disk here (it mounts the ESP as vfat, and these hosts' kernels have no vfat); mkosi 25 from trixie builds
# it with systemd-repart + mtools, nothing mounted. The host stays untouched: the tree is a directory made by
# mmdebstrap, entered with chroot inside a private mount namespace (see scripts/image-build.sh).
# Prints the tree's path (last line). Needs root.
#
# Environment: SEXTANT_CACHE (default /var/cache/sextant)
set -euo pipefail
cache=${SEXTANT_CACHE:-/var/cache/sextant}
mirror=http://deb.debian.org/debian
log() { echo "tools-tree: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root (mmdebstrap root mode)"; exit 1; }

# mkosi runs apt (bookworm image), systemd-repart (disk), ukify (UKI), mtools/dosfstools (ESP, no mount),
# mke2fs (root), and python3-pefile through ukify.
packages=(mkosi apt dpkg gnupg debian-archive-keyring ca-certificates python3 systemd systemd-repart systemd-ukify
  systemd-boot-efi mtools dosfstools e2fsprogs cpio zstd kmod util-linux fdisk binutils)
recipe="v1|trixie|$mirror|$(IFS=,; echo "${packages[*]}")"
key=$(echo -n "$recipe" | sha256sum | cut -c1-12)
tree="$cache/tools/trixie-$key"
if [ -x "$tree/usr/bin/mkosi" ] && [ -f "$tree/.complete" ]; then
  echo "$tree"
  exit 0
fi
mkdir -p "$cache/tools" "$cache/tools-debs"
rm -rf "$tree.tmp"
log "building $tree (mmdebstrap trixie, ${#packages[@]} packages; ~1 min cold)"
t0=$(date +%s)
mmdebstrap --mode=root --variant=apt --include="$(IFS=,; echo "${packages[*]}")" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
  --setup-hook="sync-in $cache/tools-debs /var/cache/apt/archives/" \
  --customize-hook="sync-out /var/cache/apt/archives $cache/tools-debs" \
  --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
  trixie "$tree.tmp" "deb $mirror trixie main" >&2
touch "$tree.tmp/.complete"
rm -rf "$tree"
mv "$tree.tmp" "$tree"
log "built in $(( $(date +%s) - t0 )) s: $tree (mkosi $(chroot "$tree" mkosi --version 2>/dev/null | awk '{print $2}'))"
echo "$tree"
