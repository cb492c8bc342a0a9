#!/usr/bin/env bash
# pg_cron from Debian's package (postgresql-<major>-cron) for each major of
# Debian's PostgreSQL here, for the tests of copies that carry what the
# server preloads: a target cluster started with shared_preload_libraries
# = 'pg_cron', and the throwaway copies Backstop makes of it, which load it
# too. The tests start their own clusters; no packaged service is used.
set -euo pipefail
missing=()
for bin in /usr/lib/postgresql/*/bin; do
    [ -x "$bin/pg_ctl" ] || continue
    major=$(basename "$(dirname "$bin")")
    [ -e "/usr/lib/postgresql/$major/lib/pg_cron.so" ] || missing+=("postgresql-$major-cron")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
command -v apt-get >/dev/null || { echo "pg-cron: no apt-get on this machine"; exit 1; }
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "pg-cron: not root and no sudo; run: apt-get install -y --no-install-recommends ${missing[*]}"; exit 1; }
    sudo="sudo"
fi
echo "installing ${missing[*]} (apt-get, Debian's package)"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
