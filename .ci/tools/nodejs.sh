#!/usr/bin/env bash
# Node.js and npm from Debian's packages: the npm-installed tools here
# (drizzle-kit, Prisma, the Supabase CLI, …) and the packaging test, which
# installs the npm package `.ci/package` builds into a fresh project.
set -euo pipefail
command -v npm >/dev/null && command -v node >/dev/null && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "nodejs: not root and no sudo; run: apt-get install -y nodejs npm"; exit 1; }
    sudo=sudo
fi
echo "installing nodejs and npm (apt-get)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
