#!/usr/bin/env bash
# scripts/test-swap.sh [UZRAM] - `make test-swap`: swap on uzram with a real kernel
# (tests/swap/swap.sh; docs/uzram-serve.md#swap), each variant in turn:
#   host               a 256 MiB guest swaps 300 MiB onto a uzram export through qemu's NBD client
#   host -o unit_size=32K   the same with 32 KiB compression units (docs/units.md)
#   host-swap          the server with --swap (skipped without CAP_SYS_RESOURCE)
#   guest-swap         uzram serve --swap inside the guest, attached with nbd-client, in a
#                      memory cgroup; its refusals, VmLck, I/O flusher flags, no OOM kill
#   guest-swap -o unit_size=32K
# Each takes a few minutes under software emulation (qemu -accel tcg). Exit 0 when none
# failed (skips are reported).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
uzram=${1:-$root/build/dev/src/cli/uzram}
failed=0
passed=0
skipped=0
run() {
  local start rc=0
  start=$(date +%s)
  echo "== swap.sh $*"
  bash "$root/tests/swap/swap.sh" "$uzram" "$@" || rc=$?
  echo "== swap.sh $*: rc=$rc in $(($(date +%s) - start)) s"
  case $rc in
    0) passed=$((passed + 1)) ;;
    77) skipped=$((skipped + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
}
run host
run host -o unit_size=32K
run host-swap
run guest-swap
run guest-swap -o unit_size=32K
echo "test-swap: $passed passed, $skipped skipped, $failed failed"
((failed == 0))
