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
PY

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
