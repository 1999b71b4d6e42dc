#!/usr/bin/env bash
# cli/load.sh UZRAM - `uzram load` as a user runs it: generated images, --json validated by
# python3's json module, exact mm_stat fields, exit statuses, no progress bar off a terminal.
set -euo pipefail
uzram=${1:?usage: load.sh PATH-TO-uzram}
command -v python3 >/dev/null || { echo "requires python3"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 16 zero blocks, 8 random blocks, 8 text blocks, then 10 bytes (a zero-padded partial block).
head -c $((16 * 4096)) /dev/zero > "$tmp/img"
head -c $((8 * 4096)) /dev/urandom >> "$tmp/img"
for i in $(seq 1 700); do echo "line $i: the quick brown fox jumps over the lazy dog"; done > "$tmp/text"
head -c $((8 * 4096)) "$tmp/text" >> "$tmp/img"  # from a file: no SIGPIPE under pipefail
printf 'tail bytes' >> "$tmp/img"

"$uzram" load "$tmp/img" --json --algo lz4 >"$tmp/out.json" 2>"$tmp/err"
[ ! -s "$tmp/err" ] || fail "stderr not empty off a terminal: $(cat "$tmp/err")"
python3 -m json.tool "$tmp/out.json" >/dev/null || fail "--json output is not JSON"
python3 - "$tmp/out.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
m = d["mm_stat"]
names = ["orig_data_size", "compr_data_size", "mem_used_total", "mem_limit", "mem_used_max",
         "same_pages", "pages_compacted", "huge_pages", "huge_pages_since"]
assert list(m) == names, list(m)
assert m["orig_data_size"] == 33 * 4096, m
assert m["same_pages"] == 16, m
assert m["huge_pages"] == 8 and m["huge_pages_since"] == 8, m
assert d["algorithm"] == "lz4" and d["blocks"] == 33 and d["image_bytes"] == 32 * 4096 + 10, d
assert d["failed_writes"] == 0 and d["then"] == [], d
assert d["ratio"] > 1 and d["mb_per_s"] > 0, d
assert d["unit_size"] == 4096, d
assert list(d["unit_stat"]) == ["units", "whole_reads", "partial_reads", "cache_hits",
                                "rmw_writes", "split_writes", "splits"], d["unit_stat"]
assert d["unit_stat"]["units"] == 0, d
PY

# Compression units: -o unit_size= and --unit-size with one size load at that size;
# several sizes load the image once each and compare them.
"$uzram" load "$tmp/img" --json -o unit_size=16K > "$tmp/u16.json"
"$uzram" load "$tmp/img" --json --unit-size 32K > "$tmp/u32.json"
"$uzram" load "$tmp/img" --json --algo zstd --unit-size 4K,32K,64K > "$tmp/cmp.json"
python3 - "$tmp/u16.json" "$tmp/u32.json" "$tmp/cmp.json" <<'PY'
import json, sys
a, b, c = (json.load(open(f)) for f in sys.argv[1:])
assert a["unit_size"] == 16384 and b["unit_size"] == 32768, (a["unit_size"], b["unit_size"])
assert a["mm_stat"]["orig_data_size"] == b["mm_stat"]["orig_data_size"] == 33 * 4096
runs = c["runs"]
assert [r["unit_size"] for r in runs] == [4096, 32768, 65536], runs
assert all(r["algorithm"] == "zstd" and r["mm_stat"]["orig_data_size"] == 33 * 4096 for r in runs)
assert c["image_bytes"] == 32 * 4096 + 10, c
PY
out=$("$uzram" load "$tmp/img" --unit-size 4K,32K)
grep -q '^UNIT  *COMPR  *TOTAL' <<<"$out" || fail "no comparison header: $out"
grep -q '^4K  ' <<<"$out" && grep -q '^32K  ' <<<"$out" || fail "no comparison rows: $out"
out=$("$uzram" load "$tmp/img" --unit-size 32K)
grep -q '^unit_size   32768 (32K)$' <<<"$out" || fail "no unit_size line: $out"
grep -q '^unit_stat   units [0-9]* whole_reads [0-9]* ' <<<"$out" || fail "no unit_stat line: $out"
for bad in "--unit-size 5K" "--unit-size 4K,,32K" "--unit-size 4K -o unit_size=4K"; do
  set +e
  "$uzram" load "$tmp/img" $bad > /dev/null 2> "$tmp/err"; rc=$?
  set -e
  [ $rc -eq 1 ] || fail "$bad: exit $rc"
done
set +e
"$uzram" load "$tmp/img" -o unit_size=8K > /dev/null 2> "$tmp/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "unit_size: expects 4K, 16K, 32K or 64K" "$tmp/err" || fail "unit_size=8K: $rc"

# Text mode carries the kernel's mm_stat line and the zramctl-style summary.
out=$("$uzram" load "$tmp/img" --then compact)
grep -q '^mm_stat  *135168 ' <<<"$out" || fail "no mm_stat line: $out"
grep -q '^NAME  DISKSIZE DATA COMPR ALGORITHM' <<<"$out" || fail "no summary table: $out"
grep -q '^then        compact: ' <<<"$out" || fail "no --then line: $out"

# Unknown algorithm: non-zero exit, the store's message.
set +e
"$uzram" load "$tmp/img" --algo lz5 >"$tmp/out" 2>"$tmp/err"; rc=$?
set -e
[ $rc -eq 2 ] || fail "unknown algorithm: exit $rc"
grep -q "unknown algorithm 'lz5'" "$tmp/err" || fail "message: $(cat "$tmp/err")"

# Usage errors: one line and the hint, exit 1.
set +e
"$uzram" load "$tmp/img" -o nonsense 2>"$tmp/err"; rc=$?
set -e
[ $rc -eq 1 ] || fail "-o nonsense: exit $rc"
grep -qx "Try 'uzram --help' for more information." "$tmp/err" || fail "no hint: $(cat "$tmp/err")"

# What is not an image: a clear error naming it, exit 2 (never a store's mapping failure).
mkdir "$tmp/adir"
set +e
"$uzram" load "$tmp/adir" >"$tmp/out" 2>"$tmp/err"; rc=$?
set -e
[ $rc -eq 2 ] || fail "load DIR: exit $rc"
grep -q "adir is a directory: IMAGE must be a regular file or a block device" "$tmp/err" ||
  fail "load DIR: $(cat "$tmp/err")"

# mem_limit failures are counted, not fatal.
head -c $((64 * 4096)) /dev/urandom > "$tmp/rand"
"$uzram" load "$tmp/rand" --json -o mem_limit=32K > "$tmp/out.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["failed_writes"] == 56, d' "$tmp/out.json"
echo "load.sh: ok"
