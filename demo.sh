#!/usr/bin/env bash
# The demo from a fresh clone: install the system packages that are missing
# (the same step .ci/run takes), then build Backstop and run `backstop demo`.
# Extra arguments go to the demo (e.g. ./demo.sh --keep).
set -euo pipefail
cd "$(dirname "$0")"
./.ci/prereqs
exec cargo run --release --locked --bin backstop -- demo "$@"
