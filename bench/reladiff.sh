#!/usr/bin/env bash
# reladiff (PyPI) for the compare benchmark, installed into a cached venv
# when missing; runs it with the arguments given.
set -euo pipefail
venv="${BACKSTOP_TOOLS:-$HOME/.cache/backstop-tools}/reladiff-venv"
if [ ! -x "$venv/bin/reladiff" ]; then
    echo "installing reladiff[postgresql] into $venv (PyPI)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'reladiff[postgresql]==0.6.*' >&2
fi
exec "$venv/bin/reladiff" "$@"
