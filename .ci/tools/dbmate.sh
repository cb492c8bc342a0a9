#!/usr/bin/env bash
# dbmate from npm (the package carries the binary), for the adopt tests.
set -euo pipefail
tools="${BACKSTOP_TOOLS:-$HOME/.cache/backstop-tools}"
[ -x "$tools/bin/dbmate" ] && exit 0
command -v npm >/dev/null || { echo "dbmate: npm is not installed"; exit 1; }
echo "installing dbmate into $tools (npm)"
npm install --silent --no-audit --no-fund --prefix "$tools/npm-dbmate" dbmate@2 >/dev/null
mkdir -p "$tools/bin"
bin=$(find "$tools/npm-dbmate/node_modules/@dbmate" -type f -name dbmate | head -n 1)
[ -n "$bin" ] || { echo "dbmate: the npm package holds no binary for this platform"; exit 1; }
ln -sf "$bin" "$tools/bin/dbmate"
