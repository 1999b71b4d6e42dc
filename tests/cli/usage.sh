#!/usr/bin/env bash
# cli/usage.sh UZRAM - the command-line surface: help, version, usage errors (exit 1 and the
# hint), ctl without a server (exit 3), status with nothing reachable (no output, exit 0).
set -euo pipefail
uzram=$(realpath "${1:?usage: usage.sh PATH-TO-uzram}")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() {  # expect STATUS CMD...
  local want=$1; shift
  set +e; "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?; set -e
  [ "$rc" -eq "$want" ] || fail "'$*': exit $rc, want $want; stderr: $(cat "$tmp/err")"
}
hint="Try 'uzram --help' for more information."

expect 0 "$uzram" --help
grep -q 'load' "$tmp/out" && grep -q 'status' "$tmp/out" && grep -q 'ctl' "$tmp/out" || fail "--help lists no subcommands"
expect 0 "$uzram" -V
grep -q '^uzram [0-9]' "$tmp/out" || fail "-V: $(cat "$tmp/out")"
expect 0 "$uzram" status --help
grep -q 'COMP-RATIO' "$tmp/out" || fail "status --help has no COLUMNS section"
for args in "" "bogus" "status --bogus" "status -o NOPE" "status --raw --json" "status -o NAME --output-all" \
            "load" "ctl" "load x --size huge"; do
  # shellcheck disable=SC2086
  expect 1 "$uzram" $args
  [ "$(tail -n1 "$tmp/err")" = "$hint" ] || fail "'$args': no hint: $(cat "$tmp/err")"
  [ "$(wc -l <"$tmp/err")" -eq 2 ] || fail "'$args': not a one-line error: $(cat "$tmp/err")"
done

export XDG_RUNTIME_DIR="$tmp/xdg"
expect 0 "$uzram" status
[ ! -s "$tmp/out" ] && [ ! -s "$tmp/err" ] || fail "status with no store printed something"
expect 3 "$uzram" ctl mm_stat
grep -q "$tmp/xdg/uzram/control.sock" "$tmp/err" || fail "ctl: default socket not named: $(cat "$tmp/err")"
expect 3 "$uzram" status --control "$tmp/none.sock"
unset XDG_RUNTIME_DIR
cd "$tmp" && expect 3 "$uzram" ctl mm_stat
grep -q "./run/uzram/control.sock" "$tmp/err" || fail "ctl: fallback socket not named: $(cat "$tmp/err")"
echo "usage.sh: ok"
