#!/usr/bin/env bash
# Signs an image's measurements.json with the build's release key (Ed25519, made once in $SEXTANT_RELEASE_KEY_DIR,
# default image/build/release, 0600), after writing into it the image version (manifest.json's "image", else the
# directory name) and the next serial of that key: the serial only grows, so a copy signed earlier is refusable
# ("sextant config generate" pins it, the JoinService never goes below it). $SEXTANT_MEASUREMENTS_VALID_DAYS, when
# set, adds an expiry. A file already carrying a version and serial that its signature covers is left as it is.
# Writes <imageDir>/measurements.json.sig and the public key beside it as measurements.pub.pem.
# Usage: scripts/measurements-sign.sh <imageDir>
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
img=$(cd "${1:?usage: measurements-sign.sh <imageDir>}" && pwd -P)
file="$img/measurements.json"
keydir=${SEXTANT_RELEASE_KEY_DIR:-$repo/image/build/release}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$keydir" && chmod 0700 "$keydir"
if [ ! -s "$keydir/measurements-release.key" ]; then
  (umask 077 && openssl genpkey -algorithm ed25519 -out "$keydir/measurements-release.key.tmp") \
    && mv "$keydir/measurements-release.key.tmp" "$keydir/measurements-release.key"
  echo "measurements-sign: new release key in $keydir" >&2
fi
openssl pkey -in "$keydir/measurements-release.key" -pubout -out "$tmp/pub.pem"
signed() {
  [ -s "$file.sig" ] && openssl pkeyutl -verify -rawin -pubin -inkey "$tmp/pub.pem" -in "$file" \
    -sigfile "$file.sig" >/dev/null 2>&1
}
if ! jq -e '(.version | type) == "string" and (.serial | type) == "number"' "$file" >/dev/null || ! signed; then
  # the key's last serial lives beside it: the next document of this key is always above every earlier one
  counter="$keydir/measurements-serial"
  last=$(cat "$counter" 2>/dev/null || echo 0)
  [[ "$last" =~ ^[0-9]+$ ]] || { echo "measurements-sign: $counter: expected a serial, got '$last'" >&2; exit 1; }
  serial=$((last + 1))
  if [ -s "$img/manifest.json" ]; then version=$(jq -r '.image' "$img/manifest.json"); else version=$(basename "$img"); fi
  expires=""
  if [ -n "${SEXTANT_MEASUREMENTS_VALID_DAYS:-}" ]; then
    expires=$(date -u -d "+${SEXTANT_MEASUREMENTS_VALID_DAYS} days" +%Y-%m-%dT%H:%M:%SZ)
  fi
  # counted before use: a crash between here and the rename wastes a serial, never reuses one
  (umask 077 && echo "$serial" >"$counter.tmp") && mv "$counter.tmp" "$counter"
  jq --arg v "$version" --argjson s "$serial" --arg e "$expires" \
    '{version: $v, serial: $s} + (if $e == "" then {} else {expires: $e} end) + del(.version, .serial, .expires)' \
    "$file" >"$tmp/measurements.json"
  openssl pkeyutl -sign -rawin -inkey "$keydir/measurements-release.key" -in "$tmp/measurements.json" -out "$tmp/sig"
  openssl pkeyutl -verify -rawin -pubin -inkey "$tmp/pub.pem" -in "$tmp/measurements.json" -sigfile "$tmp/sig" >/dev/null
  mv "$tmp/measurements.json" "$file"
  mv "$tmp/sig" "$file.sig"
fi
cp "$tmp/pub.pem" "$img/measurements.pub.pem"
fp=$(openssl pkey -pubin -in "$img/measurements.pub.pem" -outform DER | sha256sum | cut -d' ' -f1)
echo "measurements-sign: image version $(jq -r .version "$file"), serial $(jq -r .serial "$file"), signed with release key sha256:$fp ($file.sig)" >&2
