#!/usr/bin/env bash
# Real OpenFeature clients for the serve tests: flagd's own evaluation
# engine (npm @openfeature/flagd-core), flagd's provider syncing over gRPC
# (npm @openfeature/flagd-provider, in-process) and the official OFREP providers
# (npm @openfeature/ofrep-provider with the server SDK; PyPI
# openfeature-provider-ofrep, with the OpenFeature Python SDK).
set -euo pipefail
tools="${BACKSTOP_TOOLS:-$HOME/.cache/backstop-tools}"

node_dir="$tools/openfeature-node"
if [ ! -d "$node_dir/node_modules/@openfeature/flagd-core" ] ||
    [ ! -d "$node_dir/node_modules/@openfeature/ofrep-provider" ] ||
    [ ! -d "$node_dir/node_modules/@openfeature/flagd-provider" ]; then
    command -v npm >/dev/null || { echo "openfeature: npm is not installed"; exit 1; }
    echo "installing @openfeature/flagd-core, the flagd and OFREP providers into $node_dir (npm)"
    mkdir -p "$node_dir"
    npm install --silent --no-audit --no-fund --prefix "$node_dir" \
        @openfeature/flagd-core@4 @openfeature/core@1 \
        @openfeature/ofrep-provider@0.1 @openfeature/server-sdk@1 \
        @openfeature/flagd-provider@0.16 @grpc/grpc-js@1 >/dev/null
fi

venv="$tools/ofrep-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import openfeature.contrib.provider.ofrep' 2>/dev/null; then
    command -v python3 >/dev/null || { echo "openfeature: python3 is not installed"; exit 1; }
    echo "installing openfeature-provider-ofrep into $venv (PyPI)"
    rm -rf "$venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian splits venv out of python3.
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get install -y -q python3-venv >/dev/null
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        'openfeature-provider-ofrep==0.3.*' 'openfeature-sdk>=0.8'
fi
