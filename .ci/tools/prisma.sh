#!/usr/bin/env bash
# The Prisma CLI from npm, for the Prisma adopt tests (`prisma migrate
# deploy` writes _prisma_migrations). Its install step fetches the schema
# engine from Prisma's own download host, not from npm: where that host
# cannot be reached the install fails, this script says so, and the tests
# write _prisma_migrations the way Prisma's docs describe instead.
set -euo pipefail
tools="${BACKSTOP_TOOLS:-$HOME/.cache/backstop-tools}"
dir="$tools/npm-prisma"
works() { [ -x "$tools/bin/prisma" ] && "$tools/bin/prisma" --version >/dev/null 2>&1; }
works && exit 0
command -v npm >/dev/null || { echo "prisma: npm is not installed"; exit 1; }
echo "installing prisma into $dir (npm)"
mkdir -p "$dir" "$tools/bin"
if ! npm install --silent --no-audit --no-fund --prefix "$dir" prisma@6 >"$dir/install.log" 2>&1; then
    echo "prisma: npm install failed (see $dir/install.log)"
    exit 1
fi
ln -sf "$dir/node_modules/.bin/prisma" "$tools/bin/prisma"
works || { echo "prisma: installed, but \`prisma --version\` fails: its engines were not downloaded"; rm -f "$tools/bin/prisma"; exit 1; }
