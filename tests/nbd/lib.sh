# tests/nbd/lib.sh - sourced by the client scripts. Usage of a script:
#   SCRIPT uzram PATH-TO-UZRAM     run against `uzram serve --run`
#   SCRIPT nbdkit                  run against `nbdkit memory` (the oracle)
# captive CMD runs CMD (via /bin/sh, $uri set) against a fresh 64 MiB export.
#
# Compression units: against uzram, the real-client scripts (clients, nbdsh, fio, nbdfuse)
# call per_unit, which runs the whole script once per unit size in $UZRAM_UNITS (default
# "4K 32K": the 4 KiB store and a 32 KiB-unit store, `-o unit_size=32K`); $UZRAM_UNIT
# (set by per_unit, or by hand) is the unit size of the servers a run starts.
set -euo pipefail
kind=${1:?usage: $0 uzram PATH | nbdkit}
uzram=${2:-}
size=$((64 << 20))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export tmp size kind

skip() { echo "SKIP: $*"; exit 77; }
need() { for t in "$@"; do command -v "$t" >/dev/null || skip "$t not installed (Debian: libnbd-bin python3-libnbd nbdkit qemu-utils)"; done; }
fail() { echo "FAIL: $*" >&2; exit 1; }

case $kind in
  uzram) [[ -x $uzram ]] || fail "uzram executable '$uzram' missing" ;;
  nbdkit) need nbdkit ;;
  *) fail "unknown server kind $kind" ;;
esac

# per_unit "$@": against uzram with no $UZRAM_UNIT, runs this script once per unit size and
# exits with the first failure (77 when a run skipped); otherwise returns.
per_unit() {
  [[ $kind == uzram && -z ${UZRAM_UNIT:-} ]] || return 0
  local u rc
  for u in ${UZRAM_UNITS:-4K 32K}; do
    echo "== $(basename "$0"): uzram serve -o unit_size=$u"
    rc=0
    UZRAM_UNIT=$u bash "$0" "$@" || rc=$?
    [[ $rc -eq 0 ]] || exit $rc
  done
  exit 0
}

# The unit size option of the servers this run starts (none: the store's default, 4K).
unit_opts=()
[[ -n ${UZRAM_UNIT:-} ]] && unit_opts=(-o "unit_size=$UZRAM_UNIT")

captive() {
  case $kind in
    uzram) "$uzram" serve -U - --control "$tmp/control.sock" --size "$size" "${unit_opts[@]}" --run "$1" ;;
    nbdkit) nbdkit -U - memory "$size" ${NBDKIT_ALLOCATOR:+allocator=$NBDKIT_ALLOCATOR} --run "$1" ;;
  esac
}

# captive_tls PSKFILE CMD: as captive, with TLS required (pre-shared keys).
captive_tls() {
  case $kind in
    uzram) "$uzram" serve -U - --control "$tmp/control.sock" --size "$size" --tls=require --tls-psk "$1" --run "$2" ;;
    nbdkit) nbdkit -U - --tls=require --tls-psk="$1" memory "$size" --run "$2" ;;
  esac
}

# captive_x509 DIR CMD: TLS required, X.509 certificates from DIR.
captive_x509() {
  case $kind in
    uzram) "$uzram" serve -U - --control "$tmp/control.sock" --size "$size" --tls=require --tls-certificates "$1" --run "$2" ;;
    nbdkit) nbdkit -U - --tls=require --tls-certificates="$1" memory "$size" --run "$2" ;;
  esac
}
