#!/usr/bin/env sh
# `npm run build`: services, CLI, SDK and generated stubs compiled to dist/ (tsc 7 emits as fast as
# it checks, ~1 s here), plus the descriptor image reflection reads at run time.
set -eu
cd "$(dirname "$0")/.."
rm -rf dist
node_modules/.bin/tsc -p tsconfig.build.json
cp gen/cloudpay.binpb dist/gen/cloudpay.binpb
