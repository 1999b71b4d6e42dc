#!/usr/bin/env bash
# Runs the test suites: run-tests.sh [dev|asan|tsan|gcc|fuzz|install]... (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
suites=("$@")
[[ ${#suites[@]} -eq 0 ]] && suites=(dev asan tsan gcc fuzz install)
status=0
for s in "${suites[@]}"; do
  echo "=== test suite: $s ==="
  case "$s" in
    dev|asan|tsan|gcc)
      cmake --preset "$s" >/dev/null
      cmake --build "build/$s" -j "$jobs"
      ctest --preset "$s" || status=1
      ;;
    fuzz)
      cmake --preset fuzz >/dev/null
      cmake --build build/fuzz -j "$jobs" --target fuzz_pool fuzz_nbd
      ctest --preset fuzz || status=1
      ;;
    install)
      tests/install/check-install.sh || status=1
      ;;
    *) echo "run-tests: unknown suite '$s'" >&2; exit 2 ;;
  esac
done
if [[ $status -ne 0 ]]; then echo "run-tests: FAILED"; fi
exit $status
