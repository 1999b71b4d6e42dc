#!/usr/bin/env bash
# The lock family's contracts bind: clang's -Wthread-safety accepts tsa/ok.cc (every lock
# type used as intended) and rejects each other tsa/*.cc with the diagnostic its first
# line names ("// expect: MESSAGE"). Usage: check-thread-safety.sh CXX SOURCE_DIR.
# Exits 77 (skipped) when CXX is not clang: other compilers ignore the attributes.
set -uo pipefail
cxx=${1:?compiler}
root=${2:?source dir}
if ! "$cxx" --version 2>/dev/null | grep -q clang; then
  echo "check-thread-safety: $cxx is not clang: skipped"
  exit 77
fi
flags=(-std=c++20 -fsyntax-only -Wthread-safety -Werror -DUZRAM_DEBUG_LEVEL=2
       -I"$root/src" -I"$root/include")
fail=0
for f in "$root"/tests/sync/tsa/*.cc; do
  name=$(basename "$f")
  out=$("$cxx" "${flags[@]}" "$f" 2>&1)
  rc=$?
  if [[ $name == ok.cc ]]; then
    if [[ $rc -ne 0 ]]; then
      echo "FAIL $name: must compile cleanly:"; echo "$out"; fail=1
    else
      echo "ok   $name"
    fi
    continue
  fi
  want=$(sed -n '1s|^// expect: ||p' "$f")
  if [[ -z $want ]]; then
    echo "FAIL $name: no '// expect:' line"; fail=1
  elif [[ $rc -eq 0 ]]; then
    echo "FAIL $name: compiled, expected: $want"; fail=1
  elif ! grep -qF -- "$want" <<<"$out"; then
    echo "FAIL $name: expected '$want', got:"; echo "$out"; fail=1
  else
    echo "ok   $name: $want"
  fi
done
exit $fail
