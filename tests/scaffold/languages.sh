#!/usr/bin/env bash
# `tally plugin new counter --lang python|js`, as an author runs it: each generated
# project's own tests pass, it builds with the command its README gives, and its
# component passes the suite in counter/ (the rules every language's counter keeps).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
suite="$root/tests/scaffold/counter"
work="$root/target/scaffold-languages"
tally() { "${CARGO:-cargo}" run --locked -q --manifest-path "$root/Cargo.toml" -p tally-server -- "$@"; }

rm -rf "$work"
mkdir -p "$work"

tally plugin new counter --lang python --dir "$work/python"
(cd "$work/python" && ./build.sh && .venv/bin/pytest -q)
tally plugin test "$work/python/counter.wasm" --scenarios "$suite"

tally plugin new counter --lang js --dir "$work/js"
(cd "$work/js" && npm install --no-audit --no-fund && npm test && npm run build)
tally plugin test "$work/js/dist/counter.wasm" --scenarios "$suite"
