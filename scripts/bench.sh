#!/usr/bin/env bash
# Installs what is needed (ZooKeeper and etcd included), builds, and runs
# coordd-bench: coordd next to the ZooKeeper C client and etcd's lock service.
# Arguments go to coordd-bench (--quick, --only ..., --out DIR; see --help).
# Writes bench.md and bench.json to --out (default: bench-results/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh bench
scripts/build.sh
out="bench-results"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[$i]}" = "--out" ] && [ $((i + 1)) -lt ${#args[@]} ]; then out="${args[$((i + 1))]}"; fi
done
mkdir -p "$out"
exec build/tests/bench/coordd-bench --out "$out" "$@"
