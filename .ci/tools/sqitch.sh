#!/usr/bin/env bash
# sqitch from Debian's packages, with its PostgreSQL driver, for the adopt tests.
set -euo pipefail
command -v sqitch >/dev/null && dpkg -s libdbd-pg-perl >/dev/null 2>&1 && exit 0
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo -n)
echo "installing sqitch and libdbd-pg-perl (apt-get)"
"${sudo_cmd[@]}" apt-get install -y -qq sqitch libdbd-pg-perl >/dev/null ||
    { echo "sqitch: cannot install (apt-get install -y sqitch libdbd-pg-perl)"; exit 1; }
