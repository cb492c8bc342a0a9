#!/usr/bin/env bash
# Prometheus from Debian's package, for the watch test that samples a real
# Prometheus scraping a small exporter (the test starts its own server with
# its own config and data folder; the packaged service is not used).
set -euo pipefail
command -v prometheus >/dev/null && exit 0
[ -x /usr/bin/prometheus ] && exit 0
command -v apt-get >/dev/null || { echo "prometheus: no apt-get on this machine"; exit 1; }
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "prometheus: not root and no sudo; run: apt-get install -y --no-install-recommends prometheus"; exit 1; }
    sudo="sudo"
fi
echo "installing prometheus (apt-get, Debian's package)"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null
