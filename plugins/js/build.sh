#!/usr/bin/env bash
# Builds the JavaScript plugins into WebAssembly components under plugins/target/js/:
# bank-account -> plugins/target/js/bank_account.wasm. Installs each plugin's pinned
# toolchain (package-lock.json, from the npm registry only) when it is missing or
# older than the lock file; running it again only rebuilds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target="$here/../target/js"

# npm ci, unless node_modules already matches package-lock.json.
install_once() {
  if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
    npm ci --no-audit --no-fund
  fi
}

cd "$here/bank-account"
install_once
npm run --silent build -- --out "$target/bank_account.wasm"
