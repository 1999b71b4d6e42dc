#!/usr/bin/env bash
# Fails when clang-format (the style of .clang-format) would change any tracked .h, .cc or
# .c file under src/, include/, tests/ or bench/. Lists those files and how many lines
# each would change. Fix with: clang-format -i FILE...
# Usage: check-format.sh   (CLANG_FORMAT=clang-format-14 by default: clang-format)
set -euo pipefail
cd "$(dirname "$0")/.."
fmt=${CLANG_FORMAT:-clang-format}
command -v "$fmt" >/dev/null || { echo "check-format: $fmt not found (Debian: clang-format)" >&2; exit 2; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files -- 'src/*.h' 'src/*.cc' 'src/*.c' 'include/*.h' 'tests/*.h' \
                         'tests/*.cc' 'tests/*.c' 'bench/*.h' 'bench/*.cc' 'bench/*.c')
else
  mapfile -t files < <(find src include tests bench -name '*.h' -o -name '*.cc' -o -name '*.c' | sort)
fi
bad=0
for f in "${files[@]}"; do
  if ! "$fmt" --dry-run -Werror "$f" >/dev/null 2>&1; then
    n=$("$fmt" "$f" | diff "$f" - | grep -c '^[<>]' || true)
    echo "check-format: $f: $n lines would change"
    bad=$((bad + 1))
  fi
done
if [[ $bad -ne 0 ]]; then
  echo "check-format: $bad of ${#files[@]} files are not formatted (clang-format -i FILE...)"
  exit 1
fi
echo "check-format: ok (${#files[@]} files)"
