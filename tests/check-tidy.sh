#!/usr/bin/env bash
# Runs clang-tidy (the checks of .clang-tidy) over every source file in src/, with the
# compile commands of a configured build (default build/dev: `cmake --preset dev`), and
# fails on any warning. Prints each warning once (a header's appear once, not per file
# that includes it) and a count by check.
# Usage: check-tidy.sh [BUILD_DIR]   (CLANG_TIDY=clang-tidy-14, JOBS=$(nproc) by default)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/dev}
tidy=${CLANG_TIDY:-clang-tidy}
jobs=${JOBS:-$(nproc)}
command -v "$tidy" >/dev/null || { echo "check-tidy: $tidy not found (Debian: clang-tidy)" >&2; exit 2; }
if [[ ! -f $build/compile_commands.json ]]; then
  echo "check-tidy: no $build/compile_commands.json; run 'cmake --preset dev' first" >&2
  exit 2
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# .clang-tidy's HeaderFilterRegex, anchored at this checkout: a checkout that lies under a
# directory named src (/tmp/x/src/include/uzram/zsmalloc.h) must not match its '/src/'.
root_re=$(printf '%s' "$(pwd)/" | sed 's/[][\.^$*+?(){}|]/\\&/g')
filter="^${root_re}(src/|include/uzram/([^z]|z[^s]))"
find src -name '*.cc' -o -name '*.c' | sort |
  xargs -P "$jobs" -n 1 "$tidy" -p "$build" --quiet --header-filter="$filter" >"$out" 2>/dev/null ||
  true
if grep -q ': error: ' "$out"; then
  grep -E ': error: ' "$out" | sort -u
  echo "check-tidy: clang-tidy could not analyse everything (errors above)"
  exit 1
fi
root=$(pwd)/
warnings=$(grep -E '^/.*: warning: .*\[[^]]+\]$' "$out" | sed "s|^$root||" | sort -u || true)
if [[ -z $warnings ]]; then
  echo "check-tidy: ok"
  exit 0
fi
echo "$warnings"
echo
echo "check-tidy: $(wc -l <<<"$warnings") warnings, by check:"
grep -oE '\[[^]]+\]$' <<<"$warnings" | sort | uniq -c | sort -rn
exit 1
