#!/usr/bin/env bash
# Builds a unified kernel image without ukify: systemd-boot's EFI stub + .osrel/.cmdline/.initrd/.linux sections.
# Each section goes after the previous one at 4 KiB alignment (bash arithmetic; mawk has no strtonum).
# systemd-stub measures these sections into PCR 11; the kernel's EFI stub measures the initrd into PCR 9.
# Usage: image-uki.sh vmlinuz initrd cmdline-file os-release out.efi
set -euo pipefail
[ "$#" -eq 5 ] || { echo "usage: $0 vmlinuz initrd cmdline-file os-release out.efi" >&2; exit 2; }
vmlinuz=$1 initrd=$2 cmdline=$3 osrel=$4 out=$5
stub=${SEXTANT_EFI_STUB:-/usr/lib/systemd/boot/efi/linuxx64.efi.stub}
[ -f "$stub" ] || { echo "image-uki: EFI stub $stub missing (apt-get install systemd-boot-efi)" >&2; exit 1; }
align() { echo $(( ($1 + 4095) / 4096 * 4096 )); }
# end of the stub's last section
end=0
while read -r _ _ size vma _; do
  e=$(( 0x$vma + 0x$size )); [ "$e" -gt "$end" ] && end=$e
done < <(objdump -h "$stub" | awk '$1 ~ /^[0-9]+$/ {print}')
args=()
off=$(align "$end")
for pair in ".osrel=$osrel" ".cmdline=$cmdline" ".initrd=$initrd" ".linux=$vmlinuz"; do
  name=${pair%%=*} file=${pair#*=}
  args+=(--add-section "$name=$file" --change-section-vma "$(printf '%s=0x%x' "$name" "$off")")
  off=$(align $(( off + $(stat -c %s "$file") )))
done
objcopy "${args[@]}" "$stub" "$out.tmp"
mv "$out.tmp" "$out"
