#!/usr/bin/env bash
# Several stores in one `uzram serve` (issue 14): hot_add / hot_remove through `uzram ctl`
# with the kernel's rules, export names selecting stores (nbdinfo --list, nbdcopy per store:
# each keeps its own data, algorithm and limit), EBUSY while a client holds a store, the
# memory attribute (parts within 2 % of rss), the metrics endpoint scraped with curl (and
# checked by the OpenMetrics parser of python3-prometheus-client, and by promtool when it is
# installed), and `uzram status --watch`.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
[[ $kind == uzram ]] || skip "stores.sh tests uzram's multi-store server"
need nbdinfo nbdcopy curl python3
py=python3
[[ -x /usr/bin/python3 ]] && py=/usr/bin/python3  # Debian's, with its modules
tolerance=0.02
grep -q __tsan_init "$uzram" && tolerance=0.04  # a TSan build: see "memory" below
export here tmp uzram py tolerance

"$uzram" serve -U - --control "$tmp/c.sock" --size 16M --metrics 0 --run '
set -u
ctl() { "$uzram" ctl --control "$tmp/c.sock" "$@"; }
sock=${uri#*socket=}
u() { echo "nbd+unix:///$1?socket=$sock"; }
# hot_add prints the new number; the stores take their own configuration.
[ "$(ctl hot_add)" = 1 ] || exit 11
[ "$(ctl hot_add)" = 2 ] || exit 11
ctl --store zram1 comp_algorithm zstd && ctl --store zram1 unit_size 32K || exit 12
ctl --store zram1 disksize 8M || exit 12
# unit_size: before disksize only; read back in bytes; unit_stat has its seven fields.
[ "$(ctl --store zram1 unit_size)" = 32768 ] && [ "$(ctl unit_size)" = 4096 ] || exit 12
rc=0; ctl --store zram1 unit_size 64K 2> "$tmp/err" || rc=$?
[ $rc = 2 ] && grep -q "unit_size: device already initialised" "$tmp/err" || { cat "$tmp/err"; exit 12; }
ctl --store zram1 unit_stat | awk "NF != 7 { exit 1 }" || exit 12
"$uzram" status --control "$tmp/c.sock" -n --raw -o NAME,UNIT > "$tmp/units"
grep -qx "zram0 4K" "$tmp/units" && grep -qx "zram1 32K" "$tmp/units" || { cat "$tmp/units"; exit 12; }
"$uzram" status --control "$tmp/c.sock" -J -b -o NAME,UNIT | grep -q "\"unit\": 32768" || exit 12
ctl -d zram2 disksize 8M && ctl --device zram2 mem_limit 1M || exit 12
ctl --store zram1 comp_algorithm | grep -q "\[zstd\]" || exit 12
ctl comp_algorithm | grep -q "\[lz4\]" || exit 12
# nbdinfo --list: every initialised store, by name; "" is zram0.
nbdinfo --list "$uri" > "$tmp/list" || exit 13
[ "$(grep -c "^export=" "$tmp/list")" = 3 ] || { cat "$tmp/list"; exit 13; }
for n in 0 1 2; do grep -q "^export=\"zram$n\":" "$tmp/list" || exit 13; done
[ "$(nbdinfo --size "$uri")" = 16777216 ] && [ "$(nbdinfo --size "$(u zram0)")" = 16777216 ] || exit 13
[ "$(nbdinfo --size "$(u zram1)")" = 8388608 ] || exit 13
nbdinfo --size "$(u zram7)" 2> "$tmp/err" && exit 14
grep -q "zram7" "$tmp/err" || exit 14
# Each store keeps its own data.
for n in 0 1; do
  { head -c 2M /dev/urandom; head -c 2M /dev/zero; } > "$tmp/d$n"
  nbdcopy "$tmp/d$n" "$(u zram$n)" || exit 15
done
for n in 0 1; do nbdcopy "$(u zram$n)" "$tmp/o$n" && cmp -n 4194304 "$tmp/d$n" "$tmp/o$n" || exit 15; done
cmp -s -n 4194304 "$tmp/o0" "$tmp/o1" && exit 15
[ "$(ctl --store zram2 mm_stat | awk "{print \$1}")" = 0 ] || exit 15
# ...and its own limit: zram2 (mem_limit 1M) refuses 4 MiB of random data, the others do not.
head -c 4M /dev/urandom > "$tmp/big"
nbdcopy "$tmp/big" "$(u zram2)" 2> /dev/null && exit 16
[ "$(ctl --store zram2 io_stat | awk "{print \$2}")" -gt 0 ] || exit 16
[ "$(ctl --store zram1 io_stat | awk "{print \$2}")" = 0 ] || exit 16
# A client holds zram1: reset and hot_remove refuse (EBUSY), zram2 is unaffected.
mkfifo "$tmp/hold"
$py -c "
import sys
sys.path.insert(0, \"$here\")
import nbdraw as r
s = r.connect(\"$uri\")
r.hello(s)
print(r.go(s, \"zram1\"), flush=True)
open(\"$tmp/hold\").read()
" > "$tmp/held" &
holder=$!
for _ in $(seq 100); do [ -s "$tmp/held" ] && break; sleep 0.05; done
[ "$(cat "$tmp/held")" = 8388608 ] || exit 17
rc=0; ctl hot_remove 1 2> "$tmp/err" || rc=$?
[ $rc = 2 ] && grep -q "hot_remove: zram1 is in use by 1 open connection" "$tmp/err" || { cat "$tmp/err"; exit 18; }
rc=0; ctl --store zram1 reset 1 2> "$tmp/err" || rc=$?
[ $rc = 2 ] && grep -q "in use by 1 open" "$tmp/err" || exit 18
"$uzram" status --control "$tmp/c.sock" -n --raw -o NAME,USERS > "$tmp/users"
grep -qx "zram1 1" "$tmp/users" && grep -qx "zram0 0" "$tmp/users" || { cat "$tmp/users"; exit 18; }
ctl --store zram2 reset 1 && ctl hot_remove 2 || exit 19
echo go > "$tmp/hold"
wait $holder || exit 19
# Gone: the store is initialised, then reset, then removed; its name is free again.
rc=0; ctl hot_remove 1 2> "$tmp/err" || rc=$?
[ $rc = 2 ] && grep -q "is initialised (reset it first)" "$tmp/err" || { cat "$tmp/err"; exit 20; }
for _ in $(seq 100); do ctl --store zram1 reset 1 2> /dev/null && break; sleep 0.05; done
ctl hot_remove 1 || exit 20
rc=0; ctl hot_remove 1 2> "$tmp/err" || rc=$?
[ $rc = 2 ] && grep -q "no store zram1" "$tmp/err" || exit 20
rc=0; ctl --store zram1 disksize 2> /dev/null || rc=$?
[ $rc = 2 ] || exit 20
rc=0; ctl --store zram0 hot_add 2> /dev/null || rc=$?
[ $rc = 1 ] || exit 20  # a zram-control attribute with a store: usage error
[ "$(ctl hot_add)" = 1 ] || exit 20
nbdinfo --list "$uri" | grep -c "^export=" | grep -qx 1 || exit 20  # zram1 is uninitialised
"$uzram" status --control "$tmp/c.sock" -n -o NAME > "$tmp/names"
[ "$(cat "$tmp/names")" = zram0 ] || exit 20
[ "$(ctl --store zram1 unit_size)" = 4096 ] || exit 20  # reset restored the default
ctl --store zram1 disksize 4M || exit 20
"$uzram" status --control "$tmp/c.sock" -n -o NAME | tr "\n" " " | grep -qx "zram0 zram1 " || exit 20
# memory: the parts, then rss; they sum to rss within 2 %. Under TSan within 4 %: there VmRSS
# stays about 1.1 MB above what smaps sums (2.0 % of its 55 MB) once the stores hold data, in
# every reading of a run, though the two agree to the page when the server is idle (not
# explained; seen in 3 runs of 5).
ctl memory > "$tmp/mem" || exit 21
tail -1 "$tmp/mem" | grep -q "^rss [0-9]*$" || exit 21
for l in zram0.pool_frames zram0.streams zram1.slot_table nbd_buffers heap libraries; do
  grep -q "^$l [0-9]*$" "$tmp/mem" || { cat "$tmp/mem"; exit 21; }
done
awk "\$1 == \"rss\" { rss = \$2; next } { sum += \$2 }
     END { d = sum - rss; if (d < 0) d = -d; exit !(rss > 0 && d <= rss * $tolerance) }" "$tmp/mem" \
  || { cat "$tmp/mem"; exit 21; }
# Metrics: OpenMetrics by default, Prometheus text on request.
curl -sf -D "$tmp/h" "$metrics" > "$tmp/om" || exit 22
grep -qi "^content-type: application/openmetrics-text; version=1.0.0; charset=utf-8" "$tmp/h" || exit 22
[ "$(tail -1 "$tmp/om")" = "# EOF" ] || exit 22
grep -q "^uzram_orig_data_size_bytes{store=\"zram0\"} [1-9]" "$tmp/om" || exit 22
grep -q "^uzram_failed_writes_total{store=\"zram0\"} 0$" "$tmp/om" || exit 22
grep -q "^uzram_nbd_requests_total{command=\"write\"} [1-9]" "$tmp/om" || exit 22
grep -q "^uzram_nbd_request_duration_seconds_bucket{command=\"read\",le=\"+Inf\"} [1-9]" "$tmp/om" || exit 22
grep -q "^uzram_store_memory_bytes{store=\"zram1\",part=\"pool_frames\"} " "$tmp/om" || exit 22
grep -q "^uzram_process_memory_bytes{part=\"rss\"} [1-9]" "$tmp/om" || exit 22
grep -q "^uzram_unit_size_bytes{store=\"zram0\"} 4096$" "$tmp/om" || exit 22
grep -q "^uzram_units{store=\"zram1\"} 0$" "$tmp/om" || exit 22
grep -q "^uzram_unit_splits_total{store=\"zram0\"} 0$" "$tmp/om" || exit 22
curl -sf -H "Accept: text/plain; version=0.0.4" -D "$tmp/h2" "$metrics" > "$tmp/prom" || exit 23
grep -qi "^content-type: text/plain; version=0.0.4" "$tmp/h2" && ! grep -q "# EOF" "$tmp/prom" || exit 23
grep -q "^# TYPE uzram_nbd_requests_total counter" "$tmp/prom" || exit 23
[ "$(curl -s -o /dev/null -w "%{http_code}" "${metrics%/metrics}/")" = 404 ] || exit 23
[ "$(curl -s -o /dev/null -w "%{http_code}" -X POST "$metrics")" = 405 ] || exit 23
if $py -c "import prometheus_client" 2> /dev/null; then
  $py -c "
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
from prometheus_client.parser import text_string_to_metric_families as pt
f = list(om(open(sys.argv[1]).read()))
assert len(f) > 20, len(f)
assert len(list(pt(open(sys.argv[2]).read()))) == len(f)
" "$tmp/om" "$tmp/prom" || exit 24
else
  echo "note: python3-prometheus-client missing: OpenMetrics parser check skipped" >&2
fi
if command -v promtool > /dev/null; then
  promtool check metrics < "$tmp/prom" || exit 25
fi
# status --watch: refreshes until interrupted; no colour when piped.
timeout -s INT 2 "$uzram" status --control "$tmp/c.sock" --watch 0.3 > "$tmp/watch"
[ "$(grep -c "^Every 0.3s: uzram status" "$tmp/watch")" -ge 2 ] || { cat "$tmp/watch"; exit 26; }
grep -q "READ-MB/S WRITE-MB/S COMPACT-MB/S WB-MB/S" "$tmp/watch" || exit 26
grep -q "$(printf "\033")" "$tmp/watch" && exit 26
"$uzram" status --watch 0 2> /dev/null && exit 26
exit 0' || fail "multi-store (status $?: 11 hot_add, 12 per-store config, 13 list, 14 unknown export," \
                "15 isolation, 16 per-store limit, 17 holder, 18 EBUSY, 19 remove others, 20 hot_remove rules," \
                "21 memory, 22 OpenMetrics, 23 Prometheus text/HTTP errors, 24 parser, 25 promtool, 26 watch)"
echo "ok several stores, metrics, memory, status --watch"
