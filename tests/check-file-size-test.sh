#!/usr/bin/env bash
# Self-test of check-file-size.sh on a scratch tree: a file at the limit passes, one line
# over it fails, in src/ and in include/.
set -euo pipefail
check="$(cd "$(dirname "$0")" && pwd)/check-file-size.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/uzram-file-size.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/a" "$tmp/include/uzram"
lines() { local i; for ((i = 0; i < $1; i++)); do echo '// x'; done; }
lines 10 >"$tmp/src/a/small.cc"
lines 20 >"$tmp/src/a/at_limit.h"
if ! out=$("$check" "$tmp" 20); then
  echo "$out"; echo "check-file-size-test: a file at the limit was refused"; exit 1
fi
lines 21 >"$tmp/src/a/over.cc"
if out=$("$check" "$tmp" 20); then
  echo "$out"; echo "check-file-size-test: a file over the limit in src/ passed"; exit 1
fi
grep -q "src/a/over.cc: 21 lines" <<<"$out" || { echo "$out"; echo "not named"; exit 1; }
rm "$tmp/src/a/over.cc"
lines 21 >"$tmp/include/uzram/over.h"
if out=$("$check" "$tmp" 20); then
  echo "$out"; echo "check-file-size-test: a file over the limit in include/ passed"; exit 1
fi
echo "check-file-size-test: ok"
