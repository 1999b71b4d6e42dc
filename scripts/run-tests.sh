#!/usr/bin/env bash
# Runs the test suites: run-tests.sh [dev|lint|asan|tsan|gcc|fuzz|install]... (default: all).
# lint: clang-format (no diff) and clang-tidy (no warning, with the dev build's commands).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
suites=("$@")
[[ ${#suites[@]} -eq 0 ]] && suites=(dev lint asan tsan gcc fuzz install)
status=0
failed=()
# GoogleTest prints only failures, so a failing test's output is short and whole in the log.
export GTEST_BRIEF=1
# A failed test of dev, asan, tsan or gcc runs once more (not the fuzzers': a crash is a bug
# whatever the timing): the first attempt's output stays in the log (look for "***Failed"
# above a "Passed"), and a test that fails twice fails the suite. The machines
# are shared and a timing bound can miss once; a real bug shows in the log either way.
retry=(--repeat until-pass:2)
for s in "${suites[@]}"; do
  echo "=== test suite: $s ==="
  start=$SECONDS
  case "$s" in
    dev|asan|tsan|gcc)
      cmake --preset "$s" >/dev/null
      cmake --build "build/$s" -j "$jobs"
      ctest --preset "$s" "${retry[@]}" || { status=1; failed+=("$s"); }
      ;;
    lint)
      [[ -f build/dev/compile_commands.json ]] || cmake --preset dev >/dev/null
      tests/check-format.sh || { status=1; failed+=("$s"); }
      tests/check-tidy.sh build/dev || { status=1; failed+=("$s"); }
      ;;
    fuzz)
      cmake --preset fuzz >/dev/null
      cmake --build build/fuzz -j "$jobs" --target fuzz_pool fuzz_nbd
      ctest --preset fuzz || { status=1; failed+=("$s"); }
      ;;
    install)
      tests/install/check-install.sh || { status=1; failed+=("$s"); }
      ;;
    *) echo "run-tests: unknown suite '$s'" >&2; exit 2 ;;
  esac
  echo "=== test suite: $s took $((SECONDS - start)) s ==="
done
if [[ $status -ne 0 ]]; then echo "run-tests: FAILED in suite(s): ${failed[*]}"; fi
exit $status
