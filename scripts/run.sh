#!/usr/bin/env bash
# Installs what is needed, builds, and runs coordd on its embedded coordinator
# at unix:/tmp/coordd.sock (or the address given as --listen ...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec build/daemon/coordd "$@"
