#!/usr/bin/env bash
# The Supabase CLI from npm (the `supabase` package starts the binary that
# its platform package, e.g. @supabase/cli-linux-x64, carries), for the
# Supabase adopt tests: `supabase migration up --db-url` writes
# supabase_migrations.schema_migrations as the CLI does on the platform.
set -euo pipefail
tools="${BACKSTOP_TOOLS:-$HOME/.cache/backstop-tools}"
dir="$tools/npm-supabase"
works() { [ -x "$tools/bin/supabase" ] && "$tools/bin/supabase" --version >/dev/null 2>&1; }
works && exit 0
command -v npm >/dev/null || { echo "supabase: npm is not installed"; exit 1; }
echo "installing supabase into $dir (npm)"
mkdir -p "$dir" "$tools/bin"
if ! npm install --silent --no-audit --no-fund --prefix "$dir" supabase@2 >"$dir/install.log" 2>&1; then
    echo "supabase: npm install failed (see $dir/install.log)"
    exit 1
fi
ln -sf "$dir/node_modules/.bin/supabase" "$tools/bin/supabase"
works || { echo "supabase: installed, but \`supabase --version\` fails (no binary package for this platform?)"; rm -f "$tools/bin/supabase"; exit 1; }
