#!/usr/bin/env bash
# check-install.sh: installs a release build into a temporary prefix (what `make install
# PREFIX=...` does), then builds tests/install/prog.c against it using only pkg-config's
# flags and runs it. Exits non-zero on any failure. Run by scripts/run-tests.sh install.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/uzram-install.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cd "$root"

echo "check-install: configuring a release build in $tmp/build"
cmake --preset release -B "$tmp/build" -DCMAKE_INSTALL_PREFIX="$tmp/prefix" \
  -DUZRAM_BUILD_TESTS=OFF -DUZRAM_BUILD_BENCH=OFF >/dev/null
cmake --build "$tmp/build" -j "$(nproc)" >/dev/null
cmake --install "$tmp/build" >/dev/null

# GNUInstallDirs may pick lib, lib64 or lib/<multiarch>.
pc="$(find "$tmp/prefix" -name uzram.pc -path '*/pkgconfig/*' | head -n 1)"
if [[ -z "$pc" ]]; then
  echo "check-install: FAILED: uzram.pc was not installed" >&2
  exit 1
fi
for f in include/uzram/zsmalloc.h include/uzram/pool.h; do
  [[ -f "$tmp/prefix/$f" ]] || { echo "check-install: FAILED: $f was not installed" >&2; exit 1; }
done
unit="$tmp/prefix/lib/systemd/system/uzram@.service"
[[ -f "$unit" ]] || { echo "check-install: FAILED: uzram@.service was not installed" >&2; exit 1; }
grep -q "^ExecStart=$tmp/prefix/bin/uzram serve " "$unit" ||
  { echo "check-install: FAILED: uzram@.service does not run $tmp/prefix/bin/uzram" >&2; exit 1; }
[[ -x "$tmp/prefix/bin/uzram" ]] || { echo "check-install: FAILED: bin/uzram missing" >&2; exit 1; }
# The release preset's UZRAM_LEAN_BINARY: libstdc++ inside the binary, not mapped beside it.
"$tmp/prefix/bin/uzram" --version >/dev/null ||
  { echo "check-install: FAILED: bin/uzram --version" >&2; exit 1; }
if command -v readelf >/dev/null &&
   readelf -d "$tmp/prefix/bin/uzram" | grep -Eq 'NEEDED.*(libstdc\+\+|libgcc_s|libfmt)'; then
  echo "check-install: FAILED: bin/uzram maps libstdc++/libgcc_s/libfmt (UZRAM_LEAN_BINARY)" >&2
  exit 1
fi
pcdir="$(dirname "$pc")"
flags="$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs uzram)"
echo "check-install: pkg-config uzram: $flags"
# shellcheck disable=SC2086  # the flags are meant to be split
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/prog" tests/install/prog.c $flags
out="$("$tmp/prog")"
if [[ "$out" != "ok" ]]; then
  echo "check-install: FAILED: prog printed '$out'" >&2
  exit 1
fi
echo "check-install: ok"
