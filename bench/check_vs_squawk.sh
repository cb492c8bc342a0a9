#!/usr/bin/env bash
# Benchmark (not a test, not run by .ci/run): `backstop check --offline`
# against `squawk` on the same up files of a realistic history of 280
# migrations (bench/app_history.py: a pulled schema, then the migrations of
# a product's years), text and JSON output, timed in alternating rounds,
# with the ratio of each (target: no slower than squawk). Then the findings
# each reports that the other misses, on a corpus of risky shapes
# (bench/corpus.py).
#
#   bench/check_vs_squawk.sh            # 280 migrations, 11 rounds
#   BENCH_FILES=250 BENCH_ROUNDS=15 bench/check_vs_squawk.sh
#   BACKSTOP=path/to/backstop bench/check_vs_squawk.sh   # skip the build
set -euo pipefail
cd "$(dirname "$0")/.."

files="${BENCH_FILES:-280}"
rounds="${BENCH_ROUNDS:-11}"

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
python3 bench/app_history.py "$work/history" "$files" >/dev/null
python3 bench/corpus.py "$work/corpus" 300 >/dev/null
python3 bench/check_vs_squawk.py "$BACKSTOP" "$work/history" "$work/corpus" "$rounds"
