#!/usr/bin/env bash
# drizzle-kit from npm, with drizzle-orm and the node-postgres driver it
# loads, for the Drizzle adopt tests: `drizzle-kit migrate` applies a
# folder and writes drizzle.__drizzle_migrations as Drizzle projects do.
set -euo pipefail
tools="${BACKSTOP_TOOLS:-$HOME/.cache/backstop-tools}"
dir="$tools/npm-drizzle"
if [ -x "$dir/node_modules/.bin/drizzle-kit" ] && [ -d "$dir/node_modules/drizzle-orm" ] &&
    [ -d "$dir/node_modules/pg" ] && [ -x "$tools/bin/drizzle-kit" ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "drizzle-kit: npm is not installed"; exit 1; }
echo "installing drizzle-kit, drizzle-orm and pg into $dir (npm)"
mkdir -p "$dir" "$tools/bin"
npm install --silent --no-audit --no-fund --prefix "$dir" \
    drizzle-kit@0.31 drizzle-orm@0.45 pg@8 >/dev/null
ln -sf "$dir/node_modules/.bin/drizzle-kit" "$tools/bin/drizzle-kit"
