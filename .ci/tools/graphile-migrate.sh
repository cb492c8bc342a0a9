#!/usr/bin/env bash
# graphile-migrate from npm, for the Graphile Migrate layout's tests: its
# own `commit` writes the committed files and their hash chain, its
# `migrate` and `status` are asked after Backstop ran.
set -euo pipefail
tools="${BACKSTOP_TOOLS:-$HOME/.cache/backstop-tools}"
dir="$tools/npm-graphile-migrate"
if [ -x "$dir/node_modules/.bin/graphile-migrate" ] && [ -x "$tools/bin/graphile-migrate" ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "graphile-migrate: npm is not installed"; exit 1; }
echo "installing graphile-migrate into $dir (npm)"
mkdir -p "$dir" "$tools/bin"
npm install --silent --no-audit --no-fund --prefix "$dir" graphile-migrate@1 >/dev/null
ln -sf "$dir/node_modules/.bin/graphile-migrate" "$tools/bin/graphile-migrate"
