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
# Reports go to files too: a daemon that a test only stops, without checking
# its exit code, must not hide one.
reports="$PWD/build-$kind/sanitizer-reports"
rm -rf "$reports" && mkdir -p "$reports"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=1:log_path=$reports/asan"
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan-suppressions.txt:log_path=$reports/tsan"
status=0
ctest --test-dir "build-$kind" --output-on-failure -j"${JOBS:-2}" "$@" || status=$?
# A file may only list the suppressions used; a report says ERROR/WARNING.
found=$(grep -l -E "(ERROR|WARNING): [A-Za-z]*Sanitizer|runtime error:" "$reports"/* 2>/dev/null || true)
if [ -n "$found" ]; then
  echo "sanitizer reports (from tests or from the daemons they ran):" >&2
  for report in $found; do
    echo "== $report" >&2
    cat "$report" >&2
  done
  status=1
fi
exit "$status"
