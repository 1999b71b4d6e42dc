#!/usr/bin/env bash
# tests/install/systemd.sh UNIT_IN UZRAM - contrib/uzram@.service passes `systemd-analyze
# verify` (docs/uzram-serve.md#systemd): configured as CMake does, with ExecStart on the
# built UZRAM. Any complaint about the unit fails. Exits 77 without systemd-analyze.
set -euo pipefail
unit_in=${1:?usage: $0 UNIT_IN UZRAM}
uzram=${2:?usage: $0 UNIT_IN UZRAM}
if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: no systemd-analyze (Debian: systemd)"
  exit 77
fi
[[ -x $uzram ]] || { echo "FAIL: $uzram missing" >&2; exit 1; }
uzram=$(cd "$(dirname "$uzram")" && pwd)/$(basename "$uzram")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/uzram-systemd.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
sed "s|@UZRAM_BINDIR@/uzram|$uzram|" "$unit_in" >"$tmp/uzram@.service"
if grep -q '@[A-Z_]*@' "$tmp/uzram@.service"; then
  echo "FAIL: unconfigured variable in the unit" >&2
  exit 1
fi
# systemd-analyze needs no running systemd; it prints what it finds (missing executables,
# unknown or misspelt settings, ordering cycles) and exits non-zero on errors.
rc=0
(cd "$tmp" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$tmp/uzram@test.service") \
  >"$tmp/out" 2>&1 || rc=$?
cat "$tmp/out"
if ((rc != 0)) || grep -q 'uzram@' "$tmp/out" || grep -qi 'cycle' "$tmp/out"; then
  echo "FAIL: systemd-analyze verify (rc=$rc)" >&2
  exit 1
fi
# The settings this project depends on are there.
for s in Type=notify AmbientCapabilities= LimitMEMLOCK=infinity NoNewPrivileges=yes \
  ProtectSystem=strict RuntimeDirectory=uzram/%i; do
  grep -q "^$s" "$tmp/uzram@.service" || { echo "FAIL: $s missing" >&2; exit 1; }
done
echo "ok systemd-analyze verify uzram@.service"
