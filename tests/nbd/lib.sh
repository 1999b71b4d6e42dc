# tests/nbd/lib.sh - sourced by the client scripts. Usage of a script:
#   SCRIPT uzram PATH-TO-UZRAM     run against `uzram serve --run`
#   SCRIPT nbdkit                  run against `nbdkit memory` (the oracle)
# captive CMD runs CMD (via /bin/sh, $uri set) against a fresh 64 MiB export.
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

captive() {
  case $kind in
    uzram) "$uzram" serve -U - --control "$tmp/control.sock" --size "$size" --run "$1" ;;
    nbdkit) nbdkit -U - memory "$size" --run "$1" ;;
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
