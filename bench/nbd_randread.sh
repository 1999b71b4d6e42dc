#!/usr/bin/env bash
# Random or sequential 4 KiB reads through the NBD server, with the server's CPU time per
# request and the store's unit_stat (not part of `make test`; docs/units.md#partial-decoding,
# docs/benchmarks.md "NBD: units against nbdkit"):
#   bench/nbd_randread.sh UZRAM CORPUS SECONDS SERVER DEPTH...
# SERVER: `nbdkit` (memory allocator=zstd) or a unit size (`4K`, `32K`, `64K`: uzram serve
# -a zstd -o unit_size=SIZE). The corpus is copied in with nbdcopy, then per DEPTH one fio
# run (nbd engine, bs 4k, iodepth DEPTH) prints IOPS, completion p99 and the server's user +
# system CPU microseconds per request, then (uzram) unit_stat's line. Environment: RW (fio
# rw, default randread), JOBS (fio numjobs, default 1: each job is one connection and reads
# its own 1/JOBS of the disk).
set -euo pipefail
[ $# -ge 5 ] || { echo "usage: $0 UZRAM CORPUS SECONDS SERVER DEPTH..." >&2; exit 2; }
for t in nbdcopy fio nbdkit python3; do
  command -v $t >/dev/null || { echo "$0: $t is missing" >&2; exit 77; }
done
export bin=$(realpath "$1") corpus=$(realpath "$2") secs=$3
server=$4
shift 4
export depths="$*"
export bytes=$(stat -c %s "$corpus")
export size=$(( (bytes + (1 << 20) - 1) >> 20 << 20 ))
export tmp=$(mktemp -d /tmp/uzram-randread.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/captive.sh" <<'EOC'
set -eu
for _ in $(seq 100); do [ -s "$tmp/pid" ] && break; sleep 0.05; done
pid=$(cat "$tmp/pid")
cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' /proc/$pid/stat; }
nbdcopy "$corpus" "$uri"
jobs=${JOBS:-1}
for d in $depths; do
  c0=$(cpu)
  fio --ioengine=nbd --uri="$uri" --name=j --rw="${RW:-randread}" --bs=4k \
      --size=$((bytes / jobs)) --offset_increment=$((bytes / jobs)) --numjobs="$jobs" \
      --group_reporting --iodepth="$d" --runtime="$secs" --time_based \
      --output-format=json 2>/dev/null > "$tmp/fio.json"
  c1=$(cpu)
  python3 - "$tmp/fio.json" "$c0" "$c1" "$d" <<'PY'
import json, sys
t = open(sys.argv[1]).read()  # fio prints "connected to NBD server" before the JSON
j = json.loads(t[t.index("{"):])["jobs"][0]["read"]
cpu = float(sys.argv[3]) - float(sys.argv[2])
print("iodepth %s: %.0f IOPS, p99 %.0f us, server %.1f us CPU per request" % (
    sys.argv[4], j["iops"], j["clat_ns"]["percentile"]["99.000000"] / 1000,
    cpu / max(j["total_ios"], 1) * 1e6))
PY
  if [ -S "$tmp/c.sock" ]; then echo "unit_stat: $("$bin" ctl --control "$tmp/c.sock" unit_stat)"; fi
done
EOC
case $server in
  nbdkit)
    nbdkit -U - -P "$tmp/pid" memory "$size" allocator=zstd --run "uri=\"\$uri\" sh $tmp/captive.sh" ;;
  *)
    "$bin" serve -U - --control "$tmp/c.sock" --size "$size" -a zstd -o "unit_size=$server" \
      --run "echo \$PPID > $tmp/pid; sh $tmp/captive.sh" ;;
esac
