#!/usr/bin/env bash
# Runs the node tests of the JavaScript SDK (guest-sdk/js) and of the JavaScript
# plugins, natively with `node --test`: no component is built. The plugins need
# their node_modules (npm ci, as build.sh does); the SDK needs none.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

(cd "$here/../../guest-sdk/js" && node --test)

cd "$here/bank-account"
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
node --test
