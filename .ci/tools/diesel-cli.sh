#!/usr/bin/env bash
# diesel_cli from crates.io (PostgreSQL only), for the adopt tests. It links
# libpq, so it needs Debian's libpq-dev.
set -euo pipefail
tools="${BACKSTOP_TOOLS:-$HOME/.cache/backstop-tools}"
[ -x "$tools/bin/diesel" ] && exit 0
if ! dpkg -s libpq-dev >/dev/null 2>&1; then
    sudo_cmd=()
    [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo -n)
    "${sudo_cmd[@]}" apt-get install -y -qq libpq-dev >/dev/null ||
        { echo "diesel-cli: cannot install libpq-dev (apt-get install -y libpq-dev)"; exit 1; }
fi
echo "installing diesel_cli into $tools (cargo install; a few minutes once)"
cargo install --quiet --locked --root "$tools" diesel_cli --version '^2' \
    --no-default-features --features postgres
