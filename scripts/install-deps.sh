#!/usr/bin/env bash
# Installs the Debian packages Sextant needs, only those that are missing.
set -euo pipefail
packages=(swtpm swtpm-tools tpm2-tools libtss2-dev libtss2-tcti-swtpm0 protobuf-compiler qemu-system-x86 qemu-utils ovmf
  mmdebstrap iproute2 openssl busybox-static cpio e2fsprogs dosfstools mtools fdisk zstd xxd binutils systemd-boot-efi jq faketime nftables containerd)
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

# Every program the sources run must be on PATH now. A package missing above shows up here on a fresh machine,
# naming the program, instead of as "spawn … ENOENT" deep inside a test (qemu-img once hid that way for a stop).
programs=(swtpm swtpm_setup swtpm_localca tpm2_pcrread tpm2_quote tpm2_checkquote tpm2_eventlog protoc
  qemu-system-x86_64 qemu-img mmdebstrap mkfs.ext4 mkfs.vfat mcopy mmd sfdisk objcopy openssl busybox cpio zstd jq
  xxd ip kubectl nft containerd ctr faketime setpriv systemd-analyze python3 go)
absent=()
for p in "${programs[@]}"; do command -v "$p" >/dev/null || absent+=("$p"); done
if [ "${#absent[@]}" -gt 0 ]; then
  echo "install-deps: still missing after install: ${absent[*]} (add their Debian packages to this script)" >&2
  exit 1
fi
