#!/usr/bin/env bash
# Builds the container images kubeadm's static pods and add-ons run, from the binaries
# scripts/build-kubernetes.sh built, as image archives that `ctr -n k8s.io images import` loads —
# no registry, no container engine. Each image is one layer written by kubernetes/tools/ociarchive
# (go-containerregistry): an OCI image layout plus the docker-save manifest.json, deterministic.
#
# Names: the imageRepository Sextant gives kubeadm (localhost/sextant) and the tags kubeadm v1.34 asks
# for, checked against the built kubeadm's `kubeadm config images list`:
#   localhost/sextant/{kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy}:<k8s version>
#   localhost/sextant/etcd:<etcd>-0   localhost/sextant/coredns:<coredns>   localhost/sextant/pause:<pause>
# kube-proxy runs in nftables mode (KubeProxyConfiguration mode: nftables, GA since 1.33): its image
# carries Debian's nft and the shared libraries nft loads (package nftables on this machine), one
# binary instead of iptables' legacy/nft variants and their dlopen()ed extension modules.
#
# Also writes node-components.tar.gz: kubelet kubeadm kubectl crictl at the archive root and the CNI
# plugins under cni/, for the node image's components (URL + SHA-256).
#
#   scripts/build-kubernetes-images.sh [<dir printed by build-kubernetes.sh>]
# Prints <dir>/images-<key>, which holds the archives and images.json ([{ref, file, sha256, size}]).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '%s build-kubernetes-images: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

dir=${1:-$("$root/scripts/build-kubernetes.sh")}
bin=$dir/bin
# shellcheck disable=SC1091
source "$dir/versions.env"
repo=${SEXTANT_IMAGE_REPOSITORY:-localhost/sextant}
nft=$(command -v nft || true)
[[ -n $nft ]] || { log "nft not found: install Debian's nftables (scripts/install-deps.sh)"; exit 1; }

key=$(
  {
    cat "$root/scripts/build-kubernetes-images.sh"
    echo "$repo"
    cat "$bin/SHA256SUMS"
    # The nft userland copied into kube-proxy: its files' digests, so a Debian update makes a new image.
    ldd "$nft" | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' | xargs readlink -f | xargs sha256sum
    sha256sum "$(readlink -f "$nft")"
  } | sha256sum | cut -c1-16
)
out=$dir/images-$key
cached() { [[ -f $out/images.json && -f $out/SHA256SUMS ]] && (cd "$out" && sha256sum --quiet --strict -c SHA256SUMS >/dev/null 2>&1); }
if cached; then
  log "cached: $out"
  echo "$out"
  exit 0
fi
# One writer at a time (concurrent test files may all ask): the others wait, then reuse its result.
exec 9>"$dir/.images.lock"
flock 9
if cached; then
  log "cached (built meanwhile): $out"
  echo "$out"
  exit 0
fi

work=$(mktemp -d "$dir/.images-XXXXXX")
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)
path_env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# ociarchive <file> <ref> [ociarchive flags…]: one image, created at the release's build date.
image() {
  local file=$1 ref=$2
  shift 2
  "$bin/ociarchive" -out "$work/$file" -ref "$ref" -created "$BUILD_DATE" -env "$path_env" -dir /tmp=1777 "$@"
  printf '%s\t%s\n' "$ref" "$file" >>"$work/refs.tsv"
}

for c in kube-apiserver kube-controller-manager kube-scheduler; do
  image "$c.tar" "$repo/$c:$KUBERNETES_VERSION" -add "/usr/local/bin/$c=$bin/$c"
done
image etcd.tar "$repo/etcd:${ETCD_VERSION#v}-0" -add "/usr/local/bin/etcd=$bin/etcd" -dir /var/lib/etcd=0700
image coredns.tar "$repo/coredns:$COREDNS_VERSION" -add "/coredns=$bin/coredns" -entrypoint /coredns
image pause.tar "$repo/pause:$PAUSE_VERSION" -add "/pause=$bin/pause" -entrypoint /pause

# kube-proxy + nft: each library at the path ldd resolves it to, the loader at its ELF interpreter path.
nft_files=(-add "/usr/sbin/nft=$(readlink -f "$nft")")
while read -r lib; do
  nft_files+=(-add "$lib=$(readlink -f "$lib")")
done < <(ldd "$nft" | awk '/=>/ {print $3} /^\t\/lib/ {print $1}')
image kube-proxy.tar "$repo/kube-proxy:$KUBERNETES_VERSION" -add "/usr/local/bin/kube-proxy=$bin/kube-proxy" \
  "${nft_files[@]}"

# Node components: static binaries the node installs as components (never baked into the measured image).
stage=$work/node-components
mkdir -p "$stage/cni"
cp "$bin/kubelet" "$bin/kubeadm" "$bin/kubectl" "$bin/crictl" "$stage/"
cp "$bin"/cni/* "$stage/cni/"
tar -C "$stage" --sort=name --mtime="$BUILD_DATE" --owner=0 --group=0 --numeric-owner -cf - . |
  gzip -n -6 >"$work/node-components.tar.gz"
rm -rf "$stage"

# images.json: what a component list or a preload step needs — name, file, digest, size.
{
  echo '['
  sep=''
  while IFS=$'\t' read -r ref file; do
    printf '%s  {"ref": "%s", "file": "%s", "sha256": "%s", "size": %s}' "$sep" "$ref" "$file" \
      "$(sha256sum "$work/$file" | cut -d' ' -f1)" "$(stat -c %s "$work/$file")"
    sep=$',\n'
  done <"$work/refs.tsv"
  printf '\n]\n'
} >"$work/images.json"
rm "$work/refs.tsv"
(cd "$work" && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
log "done in $(($(date +%s) - t0)) s: $out"
echo "$out"
