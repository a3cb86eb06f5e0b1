#!/usr/bin/env bash
# Builds the Python bank-account plugin (plugins/python/bank-account, on the SDK in
# guest-sdk/python) into the component plugins/target/python/bank_account.wasm.
# The pinned tools (tools.txt) live in a venv under target/python-tools/, installed
# from PyPI only when missing: once they are there, no network is needed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/target/python-tools"
tools="$root/plugins/python/tools.txt"
out="$root/plugins/target/python"

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
installed="$("$venv/bin/pip" freeze --disable-pip-version-check)"
missing="$(grep -v '^#' "$tools" | grep -vxF -f <(echo "$installed") || true)"
if [[ -n "$missing" ]]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$tools"
fi

mkdir -p "$out"
# Without VIRTUAL_ENV, componentize-py does not add a caller's venv to the component.
env -u VIRTUAL_ENV "$venv/bin/componentize-py" \
    --wit-path "$root/wit" --world plugin \
    componentize app \
    --python-path "$root/plugins/python/bank-account" \
    --python-path "$root/guest-sdk/python" \
    --output "$out/bank_account.wasm"
