#!/usr/bin/env bash
# scripts/test-swap.sh [UZRAM] - `make test-swap`: swap on uzram with a real kernel
# (tests/swap/swap.sh; docs/uzram-serve.md#swap), each variant in turn:
#   host        a 256 MiB guest swaps 300 MiB onto a uzram export through qemu's NBD client
#   host-swap   the server with --swap (skipped without CAP_SYS_RESOURCE)
#   guest-swap  uzram serve --swap inside the guest, attached with nbd-client, in a memory
#               cgroup; its refusals, VmLck, I/O flusher flags, nothing mapped while it
#               serves, no OOM kill
# and host and guest-swap again with 32 KiB compression units (-o unit_size=32K,
# docs/units.md) where the store has that attribute (skipped, and said, where not). Each
# takes 1.5-8 minutes under software emulation (qemu -accel tcg; all of them 10 minutes on
# a busy 2-vCPU VM, docs/uzram-serve.md#swap). Exit 0 when none failed
# (skips are reported).
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
run host-swap
run guest-swap
tmp=$(mktemp -d)
if "$uzram" serve -U - --control "$tmp/c.sock" --size 1M -o unit_size=32K --run true \
  2>"$tmp/err"; then
  run host -o unit_size=32K
  run guest-swap -o unit_size=32K
else
  echo "== units: skipped: $(cat "$tmp/err")"
  skipped=$((skipped + 2))
fi
rm -rf "$tmp"
echo "test-swap: $passed passed, $skipped skipped, $failed failed"
((failed == 0))
