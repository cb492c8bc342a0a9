#!/usr/bin/env bash
# pgBackRest from Debian's package, for the tests of the pgbackrest backup engine:
# they run its real binary against throwaway clusters with WAL archiving
# into a local repository of their own (the package's config is not used).
set -euo pipefail
command -v pgbackrest >/dev/null && exit 0
[ -x /usr/bin/pgbackrest ] && exit 0
command -v apt-get >/dev/null || { echo "pgbackrest: no apt-get on this machine"; exit 1; }
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "pgbackrest: not root and no sudo; run: apt-get install -y --no-install-recommends pgbackrest"; exit 1; }
    sudo="sudo"
fi
echo "installing pgbackrest (apt-get, Debian's package)"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgbackrest >/dev/null
