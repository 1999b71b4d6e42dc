#!/usr/bin/env bash
# uzram serve against `nbdkit memory allocator=zstd`, side by side on one page corpus (not
# part of `make test`; docs/benchmarks.md "NBD server: units against nbdkit"):
#   bench/nbd_vs_nbdkit.sh UZRAM CORPUS [FIO_SECONDS] [SERVER...]
# SERVER is `nbdkit` (memory allocator=zstd), `uzram[:ARGS]`, ARGS being extra `uzram
# serve` arguments with commas for spaces (`uzram:-a,zstd,-o,unit_size=32K`), or
# `zstd@UNIT[/LEVEL][:ARGS]`: uzram serve with zstd at that unit size and level
# (`zstd@32K/6` = -a zstd -o unit_size=32K -o 'algorithm_params=algo=zstd level=6'; no
# LEVEL: zstd's default, 3); default: `uzram:-a,zstd nbdkit`. Per server, in one run: the
# server's VmRSS idle (before any
# client), nbdcopy of the corpus into it (MB/s), VmRSS after the write (once the server
# has closed the connection, then 0.2 s, for every server alike), nbdcopy of the
# disk to null: (MB/s; best of two; --no-extents for every server, since block status
# crashes nbdkit's zstd allocator), a byte-for-byte check, VmRSS after the reads, then fio
# (nbd engine, 4 KiB, random) read at iodepth 1 and 16 and write at iodepth 1 and 16:
# IOPS and completion-latency p99 in us. fio writes buffers that compress about 2:1
# (buffer_compress_percentage=50) and refills them for every write. "CPU s" = the server's
# user + system seconds for the write, and per read pass: a figure the other load of a
# shared machine moves much less than MB/s.
# A second table breaks the RSS after the write down: uzram's `memory` attribute (pool
# frames in use, idle frames, pool metadata, slot table, compression streams, NBD buffers,
# heap, libraries) with mm_stat's compr_data_size, and nbdkit's anonymous and file-backed
# resident memory (/proc/PID/smaps_rollup). RSS_ONLY=1 skips the reads and fio.
set -euo pipefail
uzram=${1:?usage: $0 UZRAM CORPUS [FIO_SECONDS] [SERVER...]}
corpus=${2:?usage: $0 UZRAM CORPUS [FIO_SECONDS] [SERVER...]}
secs=${3:-10}
shift $(( $# < 3 ? $# : 3 ))
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(uzram:-a,zstd nbdkit)
for t in nbdcopy fio nbdkit python3; do
  command -v $t >/dev/null || { echo "$0: $t is missing" >&2; exit 77; }
done
uzram=$(realpath "$uzram"); corpus=$(realpath "$corpus")
bytes=$(stat -c %s "$corpus")
size=$(( (bytes + (1 << 20) - 1) >> 20 << 20 ))
tmp=$(mktemp -d /tmp/uzram-nbdbench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export tmp bytes corpus secs uzram

# The captive command: runs with $uri set; the server's pid is in $tmp/pid.
cat > "$tmp/captive.sh" <<'EOF'
set -eu
for _ in $(seq 100); do [ -s "$tmp/pid" ] && break; sleep 0.05; done  # nbdkit -P may lag
pid=$(cat "$tmp/pid")
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
now() { date +%s.%N; }
cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' /proc/$pid/stat; }
# The server's sockets (listening, control, connections): RSS is sampled once it has closed
# the client's connection (back to the idle count), then 0.2 s later, for every server
# alike (uzram gives its streams' memory back when the last connection closes).
socks() { find /proc/$pid/fd -lname 'socket:*' 2>/dev/null | wc -l; }
settle() {
  for _ in $(seq 500); do [ "$(socks)" -le "$s0" ] && break; sleep 0.01; done
  sleep 0.2
}
idle=$(rss)
s0=$(socks)
c0=$(cpu); t0=$(now); nbdcopy "$corpus" "$uri"; t1=$(now); c1=$(cpu)
settle
wrss=$(rss)
# Where the RSS after the write is (a row of the second table).
if [ -S "$tmp/c.sock" ]; then
  "$uzram" ctl --control "$tmp/c.sock" memory > "$tmp/mem"
  "$uzram" ctl --control "$tmp/c.sock" mm_stat | awk '{print "compr_data_size", $2}' >> "$tmp/mem"
else
  awk '/^Rss:/ {r = $2} /^Anonymous:/ {a = $2}
       END {print "rss", r * 1024; print "heap", a * 1024; print "libraries", (r - a) * 1024}' \
    /proc/$pid/smaps_rollup > "$tmp/mem"
fi
python3 - "$tmp/mem" <<'PY' >> "$tmp/breakdown"
import os, sys
m = {}
for l in open(sys.argv[1]):
    k, v = l.split()
    k = k.split(".", 1)[-1]  # zram0.pool_frames -> pool_frames
    m[k] = m.get(k, 0) + int(v)
cols = ["rss", "pool_frames", "pool_idle_frames", "pool_metadata", "slot_table", "streams",
        "nbd_buffers", "heap", "libraries", "compr_data_size"]
cell = lambda k: "%.1f" % (m[k] / 1048576) if k in m else "-"
print("| %-32s | %s |" % (os.environ["label"], " | ".join(cell(k) for k in cols)))
PY
if [ -n "${RSS_ONLY:-}" ]; then
  python3 -c "import os; print('| %-32s | %.1f | %.0f | | %.1f |' % (os.environ['label'], $idle / 1024, $bytes / 1e6 / ($t1 - $t0), $wrss / 1024))"
  exit 0
fi
best=1e9
for _ in 1 2; do
  a=$(now); nbdcopy --no-extents "$uri" null:; b=$(now)
  best=$(python3 -c "print(min($best, $b - $a))")
done
c2=$(cpu)
nbdcopy --no-extents "$uri" - | cmp -n "$bytes" - "$corpus" >/dev/null || echo MISMATCH >&2
settle
rrss=$(rss)
fio_one() {  # RW DEPTH -> "IOPS P99US"
  fio --ioengine=nbd --uri="$uri" --name=j --rw=$1 --bs=4k --size="$bytes" --iodepth=$2 \
      --runtime="$secs" --time_based --buffer_compress_percentage=50 --refill_buffers \
      --output-format=json 2>/dev/null | python3 -c '
import json, sys
t = sys.stdin.read()  # fio prints "connected to NBD server" before the JSON
j = json.loads(t[t.index("{"):])["jobs"][0]["'$3'"]
print("%.0f %.0f" % (j["iops"], j["clat_ns"]["percentile"]["99.000000"] / 1000))'
}
r1=$(fio_one randread 1 read); r16=$(fio_one randread 16 read)
w1=$(fio_one randwrite 1 write); w16=$(fio_one randwrite 16 write)
python3 - "$idle" "$t0" "$t1" "$wrss" "$best" "$rrss" "$c0" "$c1" "$c2" \
        "$r1" "$r16" "$w1" "$w16" <<'PY'
import os, sys
idle, t0, t1, wrss, best, rrss, c0, c1, c2 = (float(x) for x in sys.argv[1:10])
r1, r16, w1, w16 = (x.split() for x in sys.argv[10:14])
b = float(os.environ["bytes"])
print("| %-32s | %5.1f | %5.0f | %5.2f | %6.1f | %5.0f | %5.2f | %6.1f | %s | %s | %s | %s |" % (
    os.environ["label"], idle / 1024, b / 1e6 / (t1 - t0), c1 - c0, wrss / 1024,
    b / 1e6 / best, (c2 - c1) / 2, rrss / 1024,
    " / ".join(r1), " / ".join(r16), " / ".join(w1), " / ".join(w16)))
PY
EOF

echo "corpus $corpus, $bytes bytes; disk $size bytes; fio ${secs}s per test;" \
     "load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| server | idle RSS MiB | write MB/s | write CPU s | RSS after write MiB | read MB/s" \
     "| read CPU s | RSS after read MiB | randread QD1 IOPS / p99 us | randread QD16" \
     "| randwrite QD1 | randwrite QD16 |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
for s in "${servers[@]}"; do
  rm -f "$tmp/pid"
  case $s in
    zstd@*)
      spec=${s#zstd@}; extra=
      [[ $spec == *:* ]] && { extra=${spec#*:}; extra=${extra//,/ }; spec=${spec%%:*}; }
      unit=${spec%%/*}; level=
      [[ $spec == */* ]] && level=${spec#*/}
      args=(-a zstd -o "unit_size=$unit")
      [[ -n $level ]] && args+=(-o "algorithm_params=algo=zstd level=$level")
      # shellcheck disable=SC2206
      args+=($extra)
      export label="uzram zstd${level:+ -$level}, $unit units${extra:+ $extra}"
      "$uzram" serve -U - --control "$tmp/c.sock" --size "$size" "${args[@]}" \
        --run "echo \$PPID > $tmp/pid; sh $tmp/captive.sh" ;;
    nbdkit)
      export label="nbdkit memory allocator=zstd"
      nbdkit -U - -P "$tmp/pid" memory "$size" allocator=zstd \
        --run "uri=\"\$uri\" sh $tmp/captive.sh" ;;
    uzram*)
      args=${s#uzram}; args=${args#:}; args=${args//,/ }
      export label="uzram serve $args"
      # shellcheck disable=SC2086
      "$uzram" serve -U - --control "$tmp/c.sock" --size "$size" $args \
        --run "echo \$PPID > $tmp/pid; sh $tmp/captive.sh" ;;
    *) echo "$0: unknown server $s" >&2; exit 2 ;;
  esac
done
echo
echo "RSS after the write, MiB (uzram: the memory attribute; nbdkit: smaps_rollup, heap ="
echo "anonymous, libraries = file-backed); compr_data_size: mm_stat's compressed bytes"
echo
echo "| server | RSS | pool frames | idle frames | pool metadata | slot table | streams" \
     "| NBD buffers | heap | libraries | compr_data_size |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
cat "$tmp/breakdown"
