#!/usr/bin/env bash
# Bundles the node agent into one ESM file for the image: dist/bundle/sextant-agent.mjs (esbuild, platform node,
# target node20) plus the one native dependency esbuild cannot inline, koffi, with its prebuilt linux-x64 addon:
#   dist/bundle/node_modules/koffi/                      (JS loader; it looks for ../@koromix/koffi-linux-x64)
#   dist/bundle/node_modules/@koromix/koffi-linux-x64/   (linux_x64/koffi.node)
# Usage: scripts/bundle-agent.sh [entry.ts]   (default agent/main.ts)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
entry=${1:-agent/main.ts}
out="$repo/dist/bundle"
cd "$repo"
[ -f "$entry" ] || { echo "bundle-agent: entry $entry does not exist" >&2; exit 1; }
for p in koffi @koromix/koffi-linux-x64; do
  [ -f "node_modules/$p/package.json" ] || { echo "bundle-agent: node_modules/$p missing (npm ci, without --omit=optional)" >&2; exit 1; }
done

rm -rf "$out.tmp"
mkdir -p "$out.tmp/node_modules/@koromix"
# CJS dependencies inside an ESM bundle call require() for Node built-ins: give them one.
npx --no-install esbuild "$entry" --bundle --platform=node --format=esm --target=node20 \
  --external:koffi --legal-comments=none --log-level=warning \
  --banner:js="import { createRequire as __sxCreateRequire } from 'node:module'; const require = __sxCreateRequire(import.meta.url);" \
  --outfile="$out.tmp/sextant-agent.mjs"
# koffi: everything but docs, C sources/headers and the musl build
tar -C node_modules -cf - --exclude=koffi/doc --exclude=koffi/vendor --exclude='koffi/src/koffi/src/*.cc' --exclude='koffi/src/koffi/src/*.hh' --exclude='koffi/src/koffi/src/abi' \
  --exclude='koffi/*.md' koffi | tar -C "$out.tmp/node_modules" -xf -
tar -C node_modules/@koromix -cf - --exclude=musl_x64 --exclude='*.md' koffi-linux-x64 | tar -C "$out.tmp/node_modules/@koromix" -xf -
echo '{"type":"module","private":true}' >"$out.tmp/package.json"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "bundle-agent: $entry -> $out/sextant-agent.mjs ($(du -sh "$out/sextant-agent.mjs" | cut -f1); bundle dir $(du -sh "$out" | cut -f1))" >&2
