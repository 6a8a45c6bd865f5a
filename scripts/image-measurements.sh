#!/usr/bin/env bash
# Prints the image's expected measurements ({"measurements": {"<pcr>": {"expected", "warnOnly"}}}) and writes
# them to <imageDir>/measurements.json. They come from a reference boot with swtpm in the QEMU provider's exact
# machine shape (image/reference-boot.ts, ~50 s under TCG); PCR 11 is also computed from the UKI's sections
# (image/pcr11.mjs, cross-checked with systemd-measure) and must match. A boot-chain PCR that differs between the
# two reference boots fails the script, naming the PCR and the differing events (attestation/reference-measurements.ts).
# The file is then given the image version and a serial that only grows, and signed with the build's release key
# (scripts/measurements-sign.sh; Ed25519, made once in $SEXTANT_RELEASE_KEY_DIR, default image/build/release, 0600):
# <imageDir>/measurements.json.sig, and the public key beside it as measurements.pub.pem, which
# "sextant config generate qemu --measurements <imageDir>/measurements.json" verifies and pins (printing the version
# and serial). Cached: a second call for the same image keeps its signed file and prints it.
# Usage: scripts/image-measurements.sh [imageDir]   (default image/build/current; root)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
img=$(cd "${1:-$repo/image/build/current}" && pwd -P)
if [ ! -s "$img/measurements.json" ] || [ "${IMAGE_MEASURE_FORCE:-0}" = 1 ]; then
  (cd "$repo" && npx --no-install tsx image/reference-boot.ts "$img" >/dev/null)
fi
# independent prediction of PCR 11 from the UKI's sections (image/pcr11.mjs), itself checked against
# systemd-measure's "enter-initrd" value when that tool is there
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
objcopy -O binary --only-section=.osrel "$img/uki.efi" "$tmp/osrel"
read -r predicted entered < <(node "$repo/image/pcr11.mjs" "$img/vmlinuz" "$tmp/osrel" "$img/cmdline" "$img/initrd.img")
booted=$(jq -r '.measurements["11"].expected' "$img/measurements.json")
if [ "$predicted" != "$booted" ]; then
  echo "image-measurements: PCR 11 from the reference boot ($booted) differs from the prediction ($predicted)" >&2
  exit 1
fi
echo "image-measurements: PCR 11 matches the prediction from the UKI sections" >&2
if [ -x /usr/lib/systemd/systemd-measure ]; then
  sm=$(/usr/lib/systemd/systemd-measure calculate --bank=sha256 --linux="$img/vmlinuz" --osrel="$tmp/osrel" \
    --cmdline="$img/cmdline" --initrd="$img/initrd.img" --json=short | jq -r '.sha256[] | select(.phase == "enter-initrd") | .hash')
  [ "$sm" = "$entered" ] && echo "image-measurements: and systemd-measure agrees" >&2 \
    || echo "image-measurements: systemd-measure disagrees ($sm vs $entered)" >&2
fi
# Sign: the release key is the build's; nodes' measurements are trusted only through it. The signer writes the
# image version and the key's next serial into the file first (scripts/measurements-sign.sh).
"$repo/scripts/measurements-sign.sh" "$img"
cat "$img/measurements.json"
