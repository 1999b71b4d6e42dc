#!/usr/bin/env bash
# cli/policy.sh UZRAM - `uzram serve --policy`: the shorthand for -o policy=VALUE (read back
# through the control socket), its refusals, and, with -v, the policy at work: nbdcopy
# writes 16 MiB of data that compresses to several times mem_limit; every write succeeds
# (the memory reaction writes the coldest blocks back), the log shows the reactions, and
# the data reads back intact. The client part is skipped (77) without nbdcopy.
set -euo pipefail
uzram=$(realpath "${1:?usage: policy.sh PATH-TO-uzram}")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ctl="'$uzram' ctl --control '$tmp/c.sock'"

"$uzram" serve -U - --control "$tmp/c.sock" --size 1M --policy chromeos \
  --run "$ctl policy" >"$tmp/out" 2>"$tmp/err" || fail "serve --policy chromeos: $(cat "$tmp/err")"
grep -q '^chromeos interval=1h backoff=10m idle_min=20h idle_max=25h ' "$tmp/out" ||
  fail "policy read back: $(cat "$tmp/out")"
"$uzram" serve -U - --control "$tmp/c.sock" --size 1M --policy 'custom interval=30m wait=500ms' \
  --run "$ctl policy" >"$tmp/out" 2>"$tmp/err" || fail "serve --policy custom: $(cat "$tmp/err")"
grep -q '^custom interval=30m .* wait=500ms ' "$tmp/out" || fail "custom read back: $(cat "$tmp/out")"

rc=0; "$uzram" serve -U - --control "$tmp/c.sock" --size 1M --policy 'custom speed=9' --run true \
  >"$tmp/out" 2>"$tmp/err" || rc=$?
[ $rc -eq 2 ] || fail "bad --policy: exit $rc, want 2"
grep -q "uzram serve: policy: unknown parameter 'speed'" "$tmp/err" || fail "bad --policy: $(cat "$tmp/err")"
rc=0; "$uzram" serve -U - --size 1M --policy off -o policy=chromeos --run true >"$tmp/out" \
  2>"$tmp/err" || rc=$?
[ $rc -eq 1 ] || fail "--policy with -o policy=: exit $rc, want 1"
grep -q -- "--policy and -o policy= exclude each other" "$tmp/err" || fail "both: $(cat "$tmp/err")"

command -v nbdcopy >/dev/null || { echo "policy.sh: no nbdcopy: client part skipped"; exit 77; }
(set +o pipefail; seq -w 1000000000 | head -c $((16 << 20))) >"$tmp/data"  # about 3x with lz4
: >"$tmp/backing"; chmod 600 "$tmp/backing"; truncate -s 16M "$tmp/backing"
"$uzram" serve -U - --control "$tmp/c.sock" --size 16M -o backing_dev="$tmp/backing" \
  -o mem_limit=1M --policy 'custom interval=0 wait=30s' -v --metrics 0 \
  --run "nbdcopy '$tmp/data' \"\$uri\" && $ctl io_stat >'$tmp/io' && $ctl policy_stat >'$tmp/ps' &&
         $ctl bd_stat >'$tmp/bd' && nbdcopy \"\$uri\" '$tmp/back' &&
         { ! command -v curl >/dev/null || curl -sf \"\$metrics\" >'$tmp/om'; }" \
  >"$tmp/out" 2>"$tmp/err" ||
  fail "serve with a memory reaction: $(tail -5 "$tmp/err")"
cmp -s "$tmp/data" "$tmp/back" || fail "the data did not read back intact"
read -r _ failed_writes _ <"$tmp/io"
[ "$failed_writes" -eq 0 ] || fail "failed writes: $(cat "$tmp/io")"
read -r -a ps <"$tmp/ps"
[ "${ps[9]}" -gt 0 ] || fail "nothing written back under pressure: $(cat "$tmp/ps")"
[ "${ps[16]}" -eq 0 ] || fail "writes failed at mem_limit: $(cat "$tmp/ps")"
grep -q "uzram serve: zram0: policy: memory reaction: pool " "$tmp/err" || fail "no reaction logged"
if [ -s "$tmp/om" ]; then  # policy_stat's fields on the metrics endpoint
  grep -q "^uzram_policy_wb_pressure_pages_total{store=\"zram0\"} [1-9][0-9]*\$" "$tmp/om" ||
    fail "metrics: $(grep uzram_policy_wb_pressure "$tmp/om")"
  grep -q "^uzram_policy_limit_failed_writes_total{store=\"zram0\"} 0\$" "$tmp/om" ||
    fail "metrics: no limit_failed series"
  grep -q "^# TYPE uzram_policy_idle_age_seconds gauge" "$tmp/om" || fail "metrics: idle_age"
fi
echo "policy.sh: ok"
