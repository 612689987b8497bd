#!/usr/bin/env bash
# Builds everything with sanitizers into its own folder and runs every test
# there. Usage: scripts/sanitize.sh asan|tsan [ctest args...]
#   asan: AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   tsan: ThreadSanitizer (build-tsan/)
# Any report fails the test that caused it (halt_on_error).
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-}"
shift || true
case "$kind" in
  asan) sanitizers="address,undefined" ;;
  tsan) sanitizers="thread" ;;
  *) echo "usage: scripts/sanitize.sh asan|tsan [ctest args...]" >&2; exit 2 ;;
esac
scripts/deps.sh test
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
cmake -S . -B "build-$kind" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOORDD_SANITIZE="$sanitizers" >/dev/null
cmake --build "build-$kind" -j"${JOBS:-2}"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan-suppressions.txt"
ctest --test-dir "build-$kind" --output-on-failure -j"${JOBS:-2}" "$@"
