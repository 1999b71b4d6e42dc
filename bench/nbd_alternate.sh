#!/usr/bin/env bash
# Servers loaded with one corpus side by side, then measured in alternation (not part of
# `make test`; docs/benchmarks.md#nbd-reads-and-the-unix-send-buffer): on a shared machine
# whose speed drifts by 10-20 % within minutes, alternating passes puts every server under
# the same drift, where nbd_vs_nbdkit.sh measures one server after the other.
#   bench/nbd_alternate.sh UZRAM CORPUS [PASSES] [SERVER...]
# SERVER: `nbdkit` (memory allocator=zstd) or `[BINARY:]zstd@UNIT[/LEVEL]` (uzram serve with
# zstd at that unit size and level; BINARY: another uzram executable, to compare builds).
# Prints, per server, PASSES `nbdcopy --no-extents URI null:` read rates in MB/s (sorted,
# the median starred), then fio's 4 KiB random reads (nbd engine, 5 s) at iodepth 1 and 16,
# $FIO_ROUNDS (default 3) alternated rounds: IOPS/p99 us. FIO_ROUNDS=0 skips fio.
set -euo pipefail
usage="usage: $0 UZRAM CORPUS [PASSES] [SERVER...]"
uzram=$(realpath "${1:?$usage}"); corpus=$(realpath "${2:?$usage}"); passes=${3:-5}
shift $(( $# < 3 ? $# : 3 ))
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(nbdkit zstd@32K zstd@64K/4)
for t in nbdcopy fio nbdkit python3; do
  command -v $t >/dev/null || { echo "$0: $t is missing" >&2; exit 77; }
done
bytes=$(stat -c %s "$corpus")
size=$(( (bytes + (1 << 20) - 1) >> 20 << 20 ))
tmp=$(mktemp -d /tmp/uzram-alternate.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
uri() { echo "nbd+unix:///?socket=$tmp/$1.s"; }
for i in "${!servers[@]}"; do
  s=${servers[$i]}
  if [[ $s == nbdkit ]]; then
    nbdkit -U "$tmp/$i.s" -P "$tmp/$i.pid" memory "$size" allocator=zstd
    pids+=("$(cat "$tmp/$i.pid")")
  else
    bin=$uzram spec=${s#*zstd@}
    [[ $s == *:zstd@* ]] && bin=$(realpath "${s%%:zstd@*}")
    unit=${spec%%/*} args=()
    [[ $spec == */* ]] && args=(-o "algorithm_params=algo=zstd level=${spec#*/}")
    "$bin" serve -U "$tmp/$i.s" --control "$tmp/$i.c" --size "$size" -a zstd \
      -o "unit_size=$unit" "${args[@]}" > "$tmp/$i.out" 2>&1 &
    pids+=("$!")
  fi
  for _ in $(seq 200); do [ -S "$tmp/$i.s" ] && break; sleep 0.05; done
  nbdcopy "$corpus" "$(uri "$i")"
done
echo "corpus $corpus, $bytes bytes; $passes read passes, ${FIO_ROUNDS:-3} fio rounds;" \
     "load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A rates fio
for _ in $(seq "$passes"); do
  for i in "${!servers[@]}"; do
    a=$(date +%s.%N); nbdcopy --no-extents "$(uri "$i")" null:; b=$(date +%s.%N)
    rates[$i]+=" $(python3 -c "print('%.0f' % ($bytes / ($b - $a) / 1e6))")"
  done
done
for _ in $(seq "${FIO_ROUNDS:-3}"); do
  for qd in 1 16; do
    for i in "${!servers[@]}"; do
      fio[$i,$qd]+=" $(fio --ioengine=nbd --uri="$(uri "$i")" --name=j --rw=randread --bs=4k \
        --size="$bytes" --iodepth=$qd --runtime=5 --time_based --output-format=json \
        2>/dev/null | python3 -c '
import json, sys
t = sys.stdin.read()  # fio prints "connected to NBD server" before the JSON
j = json.loads(t[t.index("{"):])["jobs"][0]["read"]
print("%.0f/%.0f" % (j["iops"], j["clat_ns"]["percentile"]["99.000000"] / 1000))')"
    done
  done
done
for i in "${!servers[@]}"; do
  sorted=$(tr ' ' '\n' <<< "${rates[$i]}" | sed '/^$/d' | sort -n |
           awk -v m=$(( (passes + 1) / 2 )) '{printf "%s%s ", $1, NR == m ? "*" : ""}')
  echo "${servers[$i]}: read MB/s ${sorted}| randread QD1${fio[$i,1]:-} | QD16${fio[$i,16]:-}"
done
