#!/usr/bin/env bash
# Builds the Kubernetes components Sextant runs from their Go modules, pinned by the wrapper modules in
# kubernetes/ (go.mod + go.sum checked in; nothing prebuilt is downloaded):
#   kubernetes/         kubeadm kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl
#   kubernetes/etcd     etcd
#   kubernetes/coredns  coredns
#   kubernetes/tools    crictl, CNI plugins (bridge host-local loopback portmap), pause, crane, and
#                       ociarchive (writes the image archives: scripts/build-kubernetes-images.sh)
# Static (CGO_ENABLED=0), reproducible (-trimpath, no VCS stamp, version ldflags whose build date is the
# release's module time, not the clock). Output: <cache>/<k8s version>-<key>/bin, where key hashes this
# script, the modules' go.mod/go.sum, the Go sources under kubernetes/ and the Go version — a second run with the same
# inputs checks SHA256SUMS and returns in about a second. Prints the output directory on stdout; progress
# goes to stderr.
#
#   scripts/build-kubernetes.sh            # build (or reuse) and print the directory
#   SEXTANT_K8S_CACHE=/some/dir scripts/build-kubernetes.sh
# Environment: SEXTANT_K8S_CACHE (default /var/cache/sextant/kubernetes), GOFLAGS_P (parallel packages,
# default 2: the machines have 2 cores and the build must not starve the rest).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mods=$root/kubernetes
cache_root=${SEXTANT_K8S_CACHE:-/var/cache/sextant/kubernetes}
parallel=${GOFLAGS_P:-2}

log() { printf '%s build-kubernetes: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# The version each module pins, read from its go.mod so there is one place to change it.
mod_version() { awk -v m="$2" '($1 == "require" && $2 == m) {print $3} ($1 == m) {print $2}' "$mods/$1/go.mod" | head -n1; }
k8s_version=$(mod_version . k8s.io/kubernetes)
etcd_version=$(mod_version etcd go.etcd.io/etcd/server/v3)
coredns_version=$(mod_version coredns github.com/coredns/coredns)
crictl_version=$(mod_version tools sigs.k8s.io/cri-tools)
cni_version=$(mod_version tools github.com/containernetworking/plugins)
# The pause image tag kubeadm v1.34 asks for (cmd/kubeadm/app/constants.PauseVersion).
pause_version=3.10.1
for v in k8s_version etcd_version coredns_version crictl_version cni_version; do
  [[ -n ${!v} ]] || { log "cannot read $v from $mods/*/go.mod"; exit 1; }
done

export GOTOOLCHAIN=local CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS=-mod=readonly
go_version=$(go env GOVERSION)

key=$(
  cd "$root"
  {
    echo "$go_version"
    cat scripts/build-kubernetes.sh
    cat kubernetes/go.mod kubernetes/go.sum kubernetes/*/go.mod kubernetes/*/go.sum
    find kubernetes -name '*.go' | LC_ALL=C sort | xargs cat
  } | sha256sum | cut -c1-16
)
out=$cache_root/$k8s_version-$key

cached() { [[ -f $out/bin/SHA256SUMS ]] && (cd "$out/bin" && sha256sum --quiet --strict -c SHA256SUMS >/dev/null 2>&1); }
if cached; then
  log "cached: $out"
  echo "$out"
  exit 0
fi

# One build at a time per cache (test files run concurrently may all ask): the others wait, then reuse it.
mkdir -p "$cache_root"
chmod 0755 "$cache_root"
exec 9>"$cache_root/.lock"
flock 9
if cached; then
  log "cached (built meanwhile): $out"
  echo "$out"
  exit 0
fi
work=$(mktemp -d "$cache_root/.build-$k8s_version-XXXXXX")
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT
bin=$work/bin
mkdir -p "$bin"

# The release's tag time from the module proxy's .info: a build date that names the source, not the build.
k8s_info=$(cd "$mods" && go mod download -json "k8s.io/kubernetes@$k8s_version" | sed -n 's/.*"Info": "\(.*\)".*/\1/p')
build_date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$k8s_info")
build_date=${build_date%%.*}
[[ $build_date == *Z ]] || build_date="${build_date}Z"
minor=${k8s_version#v1.}
minor=${minor%%.*}

# Kubernetes' own release flags (hack/lib/version.sh and golang.sh): the version vars in both
# component-base and client-go, -s -w, and the tags selinux,notest,grpcnotrace.
k8s_ldflags="-s -w"
for kv in "gitVersion=$k8s_version" "gitMajor=1" "gitMinor=$minor" "gitTreeState=clean" "buildDate=$build_date"; do
  k8s_ldflags+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
done

gobuild() { # gobuild <module dir> <ldflags> <tags> <packages...>
  local dir=$1 ldflags=$2 tags=$3
  shift 3
  (cd "$mods/$dir" && go build -p "$parallel" -trimpath -buildvcs=false -tags "$tags" -ldflags "$ldflags" -o "$bin/" "$@")
}

t0=$(date +%s)
log "Kubernetes $k8s_version ($go_version, -p $parallel) -> $out"
gobuild . "$k8s_ldflags" selinux,notest,grpcnotrace \
  k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl
t1=$(date +%s)
log "etcd $etcd_version"
gobuild etcd "-s -w" "" go.etcd.io/etcd/server/v3
mv "$bin/server" "$bin/etcd" # go names a .../vN main package after the element before vN
t2=$(date +%s)
log "CoreDNS $coredns_version"
gobuild coredns "-s -w" "" github.com/coredns/coredns
t3=$(date +%s)
log "crictl $crictl_version, CNI plugins $cni_version, crane, ociarchive, pause $pause_version"
gobuild tools "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$crictl_version \
-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$cni_version \
-X main.version=$pause_version" "" \
  sigs.k8s.io/cri-tools/cmd/crictl github.com/google/go-containerregistry/cmd/crane ./pause ./ociarchive \
  github.com/containernetworking/plugins/plugins/main/bridge github.com/containernetworking/plugins/plugins/main/loopback \
  github.com/containernetworking/plugins/plugins/ipam/host-local github.com/containernetworking/plugins/plugins/meta/portmap
mkdir -p "$bin/cni"
mv "$bin/bridge" "$bin/loopback" "$bin/host-local" "$bin/portmap" "$bin/cni/"
t4=$(date +%s)

cat >"$work/versions.env" <<EOF
KUBERNETES_VERSION=$k8s_version
ETCD_VERSION=$etcd_version
COREDNS_VERSION=$coredns_version
CRICTL_VERSION=$crictl_version
CNI_PLUGINS_VERSION=$cni_version
PAUSE_VERSION=$pause_version
GO_VERSION=$go_version
BUILD_DATE=$build_date
BUILD_SECONDS_KUBERNETES=$((t1 - t0))
BUILD_SECONDS_ETCD=$((t2 - t1))
BUILD_SECONDS_COREDNS=$((t3 - t2))
BUILD_SECONDS_TOOLS=$((t4 - t3))
EOF
(cd "$bin" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
log "done in $((t4 - t0)) s: $out"
echo "$out"
