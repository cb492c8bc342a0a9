#!/usr/bin/env bash
# node-pg-migrate from npm, with the node-postgres driver it loads, for
# the node-pg-migrate layout's tests: its own `up` runs a folder of SQL
# migrations with `-- Up Migration` / `-- Down Migration` sections and
# writes pgmigrations; it is asked after Backstop ran, and Backstop adopts
# what it ran.
set -euo pipefail
tools="${BACKSTOP_TOOLS:-$HOME/.cache/backstop-tools}"
dir="$tools/npm-node-pg-migrate"
if [ -x "$dir/node_modules/.bin/node-pg-migrate" ] && [ -d "$dir/node_modules/pg" ] &&
    [ -x "$tools/bin/node-pg-migrate" ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "node-pg-migrate: npm is not installed"; exit 1; }
echo "installing node-pg-migrate and pg into $dir (npm)"
mkdir -p "$dir" "$tools/bin"
npm install --silent --no-audit --no-fund --prefix "$dir" node-pg-migrate@8 pg@8 >/dev/null
ln -sf "$dir/node_modules/.bin/node-pg-migrate" "$tools/bin/node-pg-migrate"
