#!/usr/bin/env bash
# Benchmark (not a test, not run by .ci/run): `backstop check` against
# `squawk` over the same generated corpus of realistic migrations, timed,
# with the findings each reports that the other misses.
#
#   bench/check_vs_squawk.sh            # 300 migrations, 5 timed runs each
#   BENCH_FILES=500 BENCH_ROUNDS=9 bench/check_vs_squawk.sh
#   BACKSTOP=path/to/backstop bench/check_vs_squawk.sh   # skip the build
set -euo pipefail
cd "$(dirname "$0")/.."

files="${BENCH_FILES:-300}"
rounds="${BENCH_ROUNDS:-5}"

if ! command -v squawk >/dev/null 2>&1; then
    echo "installing squawk-cli from PyPI (pip)" >&2
    python3 -m pip install --quiet squawk-cli
fi
if [ -z "${BACKSTOP:-}" ]; then
    cargo build --release --quiet -p backstop-cli
    BACKSTOP="${CARGO_TARGET_DIR:-target}/release/backstop"
fi
BACKSTOP="$(cd "$(dirname "$BACKSTOP")" && pwd)/$(basename "$BACKSTOP")"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 bench/corpus.py "$work" "$files" >/dev/null
python3 bench/check_vs_squawk.py "$BACKSTOP" "$work" "$rounds"
