#!/usr/bin/env bash
# maturin from PyPI, in a virtual environment of its own, for `.ci/package`
# (the wheel) and the packaging test that installs what it builds.
set -euo pipefail
tools="${BACKSTOP_TOOLS:-$HOME/.cache/backstop-tools}"
venv="$tools/maturin-venv"
if [ -x "$venv/bin/maturin" ] && [ -x "$tools/bin/maturin" ]; then
    exit 0
fi
# Debian's python3 makes virtual environments only with python3-venv.
if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "maturin: not root and no sudo; run: apt-get install -y python3 python3-venv"; exit 1; }
        sudo=sudo
    fi
    echo "installing python3 and python3-venv (apt-get)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 python3-venv >/dev/null
fi
echo "installing maturin into $venv (PyPI)"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check 'maturin>=1.7,<2.0'
mkdir -p "$tools/bin"
ln -sf "$venv/bin/maturin" "$tools/bin/maturin"
