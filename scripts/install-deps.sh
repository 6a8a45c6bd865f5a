#!/usr/bin/env bash
# Installs the Debian packages Sextant needs, only those that are missing.
set -euo pipefail
packages=(swtpm swtpm-tools tpm2-tools libtss2-dev libtss2-tcti-swtpm0 protobuf-compiler qemu-system-x86 qemu-utils ovmf
  mmdebstrap iproute2 openssl busybox-static cpio e2fsprogs dosfstools mtools fdisk zstd xxd binutils systemd-boot-efi jq faketime)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# kubectl may already come from another package (it does on these machines); Debian's is only a fallback.
command -v kubectl >/dev/null || missing+=(kubernetes-client)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
