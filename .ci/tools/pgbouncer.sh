#!/usr/bin/env bash
# PgBouncer from Debian's package, for the tests of commands run through a
# transaction-mode pooler: each test starts its own pgbouncer on a free
# port in front of a throwaway cluster (the package's service is not used).
set -euo pipefail
command -v pgbouncer >/dev/null && exit 0
[ -x /usr/sbin/pgbouncer ] && exit 0
command -v apt-get >/dev/null || { echo "pgbouncer: no apt-get on this machine"; exit 1; }
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "pgbouncer: not root and no sudo; run: apt-get install -y --no-install-recommends pgbouncer"; exit 1; }
    sudo="sudo"
fi
echo "installing pgbouncer (apt-get, Debian's package)"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgbouncer >/dev/null
# The package starts its own service on 6432; the tests start their own.
$sudo systemctl disable --now pgbouncer >/dev/null 2>&1 || $sudo service pgbouncer stop >/dev/null 2>&1 || true
