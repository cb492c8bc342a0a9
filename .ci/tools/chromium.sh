#!/usr/bin/env bash
# Headless Chromium (Debian's package) and puppeteer-core (npm, which
# drives an installed browser and downloads none), for the status-page test.
set -euo pipefail
tools="${BACKSTOP_TOOLS:-$HOME/.cache/backstop-tools}"
if ! command -v chromium >/dev/null; then
    command -v apt-get >/dev/null || { echo "chromium: no apt-get on this machine"; exit 1; }
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "chromium: not root and no sudo; run: apt-get install -y --no-install-recommends chromium"; exit 1; }
        sudo="sudo"
    fi
    echo "installing chromium (apt-get, Debian's package)"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null
fi
dir="$tools/puppeteer"
if [ ! -d "$dir/node_modules/puppeteer-core" ]; then
    command -v npm >/dev/null || { echo "chromium: npm is not installed"; exit 1; }
    echo "installing puppeteer-core into $dir (npm)"
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --prefix "$dir" puppeteer-core@23 >/dev/null
fi
