#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (AddressSanitizer on) into
# build-fuzz/ and runs each for a bounded time on its corpus in tests/fuzz.
# Usage: scripts/fuzz.sh [seconds per target, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
scripts/deps.sh fuzz
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOORDD_FUZZ=ON \
  -DCOORDD_SANITIZE=address,undefined >/dev/null
cmake --build build-fuzz -j"${JOBS:-2}" --target coordd_fuzz_config coordd_fuzz_requests
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt"
for target in config requests; do
  corpus="tests/fuzz/$target/corpus"
  # New inputs go to a scratch folder: the corpus in the repository stays as reviewed.
  scratch="build-fuzz/corpus-$target"
  mkdir -p "$scratch"
  echo "== coordd_fuzz_$target for ${seconds}s"
  "build-fuzz/tests/fuzz/$target/coordd_fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$scratch" "$corpus"
done
