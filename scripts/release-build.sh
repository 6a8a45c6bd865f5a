#!/usr/bin/env bash
# Builds a Sextant release directory: everything a cluster needs, checked by SHA-256 and signed with the release key.
#   <dir>/image/          the node image (disk.img, uki.efi, vmlinuz, initrd.img, cmdline, manifest.json)
#   <dir>/measurements.json (+ .sig, measurements.pub.pem)   the image's expected PCRs, signed
#   <dir>/components/     Kubernetes node binaries, CNI plugins and image archives (served to the nodes)
#   <dir>/release.json (+ .sig)   the manifest: Kubernetes version, image id, the measurements' SHA-256, every
#                         component's name, SHA-256, size and install path; signed with the same release key
# Each part comes from its own cached build (scripts/build-kubernetes.sh, build-kubernetes-images.sh, image-build.sh,
# image-measurements.sh), so a second run with the same inputs takes seconds. Prints the directory (last line).
#   scripts/release-build.sh [DIR]   (default: $SEXTANT_CACHE/releases/<key of the inputs>; root)
# Extra image archives to preload on every node: SEXTANT_RELEASE_EXTRA_IMAGES="a.tar b.tar" (docker/OCI archives).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${SEXTANT_CACHE:-/var/cache/sextant}
log() { printf '%s release-build: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
t0=$(date +%s)
[ "$(id -u)" -eq 0 ] || { log "must run as root (the image build needs it)"; exit 1; }

phase() { log "phase $1"; }
phase "kubernetes (cached by input hash; cold: 10-20 min on 2 cores)"
k8s=$(bash "$repo/scripts/build-kubernetes.sh" | tail -1)
phase "kubernetes images"
images=$(bash "$repo/scripts/build-kubernetes-images.sh" "$k8s" | tail -1)
phase "node image (cached by input hash; cold: about 3 min)"
img=$(bash "$repo/scripts/image-build.sh" | tail -1)
phase "measurements (a reference boot under TCG when the image is new: about 2 min)"
bash "$repo/scripts/image-measurements.sh" "$img" >/dev/null
# shellcheck disable=SC1091
source "$k8s/versions.env"

extra=()
for f in ${SEXTANT_RELEASE_EXTRA_IMAGES:-}; do extra+=("$(readlink -f "$f")"); done
key=$(
  {
    basename "$k8s"; basename "$images"; basename "$img"
    cat "$img/measurements.json.sig" "$repo/scripts/release-build.sh"
    for f in "${extra[@]+"${extra[@]}"}"; do sha256sum "$f"; done
  } | sha256sum | cut -c1-16
)
out=$(readlink -m "${1:-$cache/releases/$KUBERNETES_VERSION-$key}")
if [ -s "$out/release.json.sig" ] && [ "$(cat "$out/.key" 2>/dev/null)" = "$key" ]; then
  log "release is up to date: $out ($(($(date +%s) - t0)) s)"
  echo "$out"
  exit 0
fi

phase "assemble $out"
rm -rf "$out.tmp"
mkdir -p "$out.tmp/image" "$out.tmp/components"
# hard links where the file system allows (the artifacts are immutable once built), copies otherwise
place() { ln -f "$1" "$2" 2>/dev/null || cp --sparse=always "$1" "$2"; }
for f in disk.img uki.efi vmlinuz initrd.img cmdline manifest.json; do place "$img/$f" "$out.tmp/image/$f"; done
for f in measurements.json measurements.json.sig measurements.pub.pem; do place "$img/$f" "$out.tmp/$f"; done

# name <TAB> source <TAB> install path on the node
list=$out.tmp/.components.tsv
: >"$list"
for b in kubeadm kubelet kubectl crictl; do printf '%s\t%s\t%s\n' "$b" "$k8s/bin/$b" "/usr/local/bin/$b" >>"$list"; done
for p in bridge host-local loopback portmap; do
  printf 'cni-%s\t%s\t%s\n' "$p" "$k8s/bin/cni/$p" "/opt/cni/bin/$p" >>"$list"
done
for a in "$images"/*.tar; do
  n=$(basename "$a")
  printf 'image-%s\t%s\t%s\n' "$n" "$a" "/opt/sextant/images/$n" >>"$list"
done
for a in "${extra[@]+"${extra[@]}"}"; do
  n=$(basename "$a")
  printf 'image-%s\t%s\t%s\n' "$n" "$a" "/opt/sextant/images/$n" >>"$list"
done

components='[]'
while IFS=$'\t' read -r name src target; do
  place "$src" "$out.tmp/components/$name"
  components=$(jq -c --arg n "$name" --arg s "$(sha256sum "$src" | cut -d' ' -f1)" --arg p "$target" \
    --argjson z "$(stat -c %s "$src")" '. + [{name: $n, sha256: $s, size: $z, installPath: $p}]' <<<"$components")
done <"$list"
rm "$list"

jq -n --arg k "$KUBERNETES_VERSION" --arg image "$(jq -r .image "$img/manifest.json")" \
  --arg m "$(sha256sum "$img/measurements.json" | cut -d' ' -f1)" --arg built "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --argjson c "$components" --arg etcd "$ETCD_VERSION" --arg coredns "$COREDNS_VERSION" \
  '{release: 1, kubernetesVersion: $k, etcdVersion: $etcd, corednsVersion: $coredns, image: $image,
    measurementsSha256: $m, nodeShape: {vcpus: 2, memoryMiB: 3072}, built: $built, components: $c}' \
  >"$out.tmp/release.json"
# The release key that signs the measurements signs the manifest too (image-measurements.sh made it).
keydir=${SEXTANT_RELEASE_KEY_DIR:-$repo/image/build/release}
openssl pkeyutl -sign -rawin -inkey "$keydir/measurements-release.key" -in "$out.tmp/release.json" \
  -out "$out.tmp/release.json.sig"
openssl pkeyutl -verify -rawin -pubin -inkey "$out.tmp/measurements.pub.pem" -in "$out.tmp/release.json" \
  -sigfile "$out.tmp/release.json.sig" >/dev/null
echo "$key" >"$out.tmp/.key"
rm -rf "$out"
mv "$out.tmp" "$out"
log "release $KUBERNETES_VERSION (image $(jq -r .image "$out/release.json")) in $(($(date +%s) - t0)) s: $out"
echo "$out"
