#!/usr/bin/env bash
# sqlx-cli from crates.io (PostgreSQL only, rustls), for the adopt tests.
set -euo pipefail
tools="${BACKSTOP_TOOLS:-$HOME/.cache/backstop-tools}"
[ -x "$tools/bin/sqlx" ] && exit 0
echo "installing sqlx-cli into $tools (cargo install; a few minutes once)"
cargo install --quiet --locked --root "$tools" sqlx-cli --version '^0.8' \
    --no-default-features --features postgres,rustls
