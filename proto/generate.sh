#!/usr/bin/env bash
# Generates TypeScript for proto/*.proto into gen/proto with ts-proto (grpc-js services) and Debian's protoc.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gen/proto
mkdir -p gen/proto
protoc --plugin=protoc-gen-ts_proto=node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out=gen/proto \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,importSuffix=.js,env=node,forceLong=number,useOptionals=none,oneof=unions-value \
  -I proto proto/*.proto
