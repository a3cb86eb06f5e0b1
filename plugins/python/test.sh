#!/usr/bin/env bash
# Runs the pytest suites of the Python SDK (guest-sdk/python) and of the Python
# plugins, natively, in the venv that build.sh makes (run build.sh first).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
pytest="$root/target/python-tools/bin/pytest"
if [[ ! -x "$pytest" ]]; then
    echo "no $pytest: run plugins/python/build.sh first" >&2
    exit 1
fi

(cd "$root/guest-sdk/python" && "$pytest" -q "$@")
(cd "$root/plugins/python/bank-account" && "$pytest" -q "$@")
