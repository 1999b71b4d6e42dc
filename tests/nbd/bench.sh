#!/usr/bin/env bash
# Side-by-side NBD benchmark (not part of `make test`): uzram serve vs nbdkit memory
# (allocator=zstd and sparse) on a page corpus. Write and read MB/s with nbdcopy, server RSS
# after the write, 4 KiB random-read p99 with fio's nbd engine; plus the Linux zram device
# (mem_used_total instead of RSS) when /sys/block/zram0 is usable.
#   tests/nbd/bench.sh UZRAM [CORPUS] [COPIES]
set -euo pipefail
uzram=${1:?usage: $0 UZRAM [CORPUS] [COPIES]}
corpus=${2:-build/corpus.img}
copies=${3:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for _ in $(seq "$copies"); do cat "$corpus"; done > "$tmp/data"
bytes=$(stat -c %s "$tmp/data")
size=$(( (bytes + (1 << 20) - 1) >> 20 << 20 ))
export tmp bytes
run_one() {  # NAME SERVER-COMMAND-PREFIX (the captive command is appended)
  local name=$1; shift
  "$@" '
    pid=$PPID; [ -s "$tmp/pid" ] && pid=$(cat "$tmp/pid")
    rss() { awk "/VmRSS/ {print \$2}" /proc/$pid/status; }
    ext=; case "$name" in *zstd*) ext=--no-extents;; esac
    t0=$(date +%s.%N); nbdcopy "$tmp/data" "$uri"; t1=$(date +%s.%N)
    r=$(rss)
    nbdcopy $ext "$uri" "$tmp/out"; t2=$(date +%s.%N)
    cmp -n "$bytes" "$tmp/data" "$tmp/out" || echo "MISMATCH"
    p99=$(fio --ioengine=nbd --uri="$uri" --name=r --rw=randread --bs=4k --size='"$bytes"' --iodepth=1 \
          --runtime=3 --time_based --output-format=terse --terse-version=3 2>/dev/null | awk -F";" "NF > 30 {sub(/.*=/, \"\", \$30); print \$30}" | tr -d "\n ")
    awk -v n="$name" -v b="$bytes" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v r="$r" -v p="$p99" "BEGIN {
      printf \"| %-22s | %8.0f | %8.0f | %8.1f | %7.2f | %6s |\n\", n, b/1e6/(t1-t0), b/1e6/(t2-t1), r/1024, r*1024/b, p }"'
}
echo "| server | write MB/s | read MB/s | RSS MiB | RSS/data | 4k rand-read p99 us |"
echo "|---|---|---|---|---|---|"
name="uzram serve (lz4)" run_one "uzram serve (lz4)" "$uzram" serve -U - --control "$tmp/c.sock" --size "$size" --algo lz4 --run
name="uzram serve (zstd)" run_one "uzram serve (zstd)" "$uzram" serve -U - --control "$tmp/c.sock" --size "$size" --algo zstd --run
rm -f "$tmp/pid"
name="nbdkit memory zstd" run_one "nbdkit memory zstd" nbdkit -U - -P "$tmp/pid" memory "$size" allocator=zstd --run
rm -f "$tmp/pid"
name="nbdkit memory sparse" run_one "nbdkit memory sparse" nbdkit -U - -P "$tmp/pid" memory "$size" allocator=sparse --run
# The Linux zram device through the block layer (dd with O_DIRECT, fio psync), for
# reference, when /sys/block/zram0 is there and unused (needs root; reset afterwards).
z=/sys/block/zram0
if [[ -w $z/disksize && $(cat $z/initstate) == 0 ]]; then
  for algo in lz4 zstd; do
    grep -qw "$algo" $z/comp_algorithm || continue
    echo 1 > $z/reset; echo "$algo" > $z/comp_algorithm; echo "$size" > $z/disksize
    t0=$(date +%s.%N); dd if="$tmp/data" of=/dev/zram0 bs=1M oflag=direct status=none; t1=$(date +%s.%N)
    dd if=/dev/zram0 of="$tmp/out" bs=1M iflag=direct count=$(( bytes >> 20 )) status=none; t2=$(date +%s.%N)
    cmp -n "$bytes" "$tmp/data" "$tmp/out" || echo "MISMATCH"
    mem=$(awk '{print $3}' $z/mm_stat)
    p99=$(fio --filename=/dev/zram0 --direct=1 --ioengine=psync --name=r --rw=randread --bs=4k --size="$bytes" \
          --runtime=3 --time_based --output-format=terse --terse-version=3 2>/dev/null |
          awk -F";" 'NF > 30 {sub(/.*=/, "", $30); print $30}' | tr -d "\n ")
    awk -v n="Linux zram0 ($algo)" -v b="$bytes" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v m="$mem" -v p="$p99" 'BEGIN {
      printf "| %-22s | %8.0f | %8.0f | %8.1f | %7.2f | %6s |\n", n, b/1e6/(t1-t0), b/1e6/(t2-t1), m/1048576, m/b, p }'
  done
  echo 1 > $z/reset
fi
