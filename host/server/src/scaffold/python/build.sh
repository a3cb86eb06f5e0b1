#!/usr/bin/env bash
# Builds this plugin into the component {{crate}}.wasm, with componentize-py from a
# venv in .venv/ (made and filled from PyPI on the first run only).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ ! -x .venv/bin/componentize-py ]]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet componentize-py==0.25.1 pytest==8.3.4
fi
env -u VIRTUAL_ENV .venv/bin/componentize-py --wit-path "{{wit_path}}" --world plugin \
    componentize app --python-path . --python-path "{{sdk_path}}" --output {{crate}}.wasm
