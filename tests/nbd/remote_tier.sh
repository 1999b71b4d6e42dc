#!/usr/bin/env bash
# The remote backing tier end to end: a `uzram serve` store (B) whose backing_dev is another
# `uzram serve` (A) over nbd+unix://, raw and packed. Blocks written to B through NBD are
# written back to A and read back; then A is killed (SIGKILL) mid-run: writeback fails and
# keeps the RAM copies, reads of blocks that lived only on A fail with EIO (counted), the
# rest read fine, B stays up; A is restarted (empty: a store is RAM): B reconnects, the
# blocks lost with A keep failing, new writebacks work, overwrites clear the loss. A maps
# no libnbd (loaded with dlopen by a remote tier only).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
[[ $kind == uzram ]] || skip "remote_tier.sh runs two uzram servers"
need python3
export PATH=/usr/bin:$PATH
python3 -c 'import nbd' 2>/dev/null || skip "no nbd Python module (Debian: python3-libnbd)"

pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
wait_for() {  # wait_for SECONDS CMD...: until CMD succeeds
  local n=$(( $1 * 20 )); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  return 1
}
start_a() {
  "$uzram" serve -U "$tmp/a.sock" --control "$tmp/a.ctl" --size 32M >> "$tmp/a.log" 2>&1 &
  pid_a=$!; pids+=("$pid_a")
  wait_for 20 "$uzram" ctl --control "$tmp/a.ctl" initstate || fail "remote A did not start: $(cat "$tmp/a.log")"
}
ctlb() { "$uzram" ctl --control "$tmp/b.ctl" "$@"; }
stat_b() { ctlb debug_stat | awk -v k="$1" '$1 == k { print $2 }'; }
connected_b() { [ "$(stat_b backing_connected)" = 1 ]; }
# blocks.py URI OP FIRST LAST [SEED]: write (deterministic contents, a third same-filled)
# or check blocks FIRST..LAST; check prints "ok N" or "eio N" (reads that failed with EIO).
cat > "$tmp/blocks.py" <<'PY'
import nbd, random, sys, errno
uri, op, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
words = [b"zram ", b"remote ", b"tier ", b"block ", b"page ", b"nbd ", b"packed "]
def block(i):
    r = random.Random(i * 7919 + seed)
    if i % 3 == 0: return bytes([i % 251]) * 4096
    if i % 3 == 1: return r.randbytes(4096)
    return b"".join(r.choice(words) for _ in range(1200))[:4096]
h = nbd.NBD(); h.connect_uri(uri)
if op == "write":
    for i in range(first, last + 1): h.pwrite(block(i), i * 4096)
    h.flush(); print("wrote", last - first + 1)
else:
    ok = eio = 0
    for i in range(first, last + 1):
        try:
            got = h.pread(4096, i * 4096)
        except nbd.Error as e:
            if e.errnum != errno.EIO: raise
            eio += 1; continue
        if got != block(i): sys.exit("block %d differs" % i)
        ok += 1
    print(op, ok, eio)
PY
blocks() { python3 "$tmp/blocks.py" "nbd+unix:///?socket=$tmp/b.sock" "$@"; }

for packed in 0 1; do
  rm -f "$tmp"/*.sock "$tmp"/*.ctl
  start_a
  "$uzram" serve -U "$tmp/b.sock" --control "$tmp/b.ctl" --size 8M \
    -o "backing_dev=nbd+unix:///?socket=$tmp/a.sock" -o compressed_writeback=$packed \
    -o backing_timeout_ms=3000 > "$tmp/b.log" 2>&1 &
  pid_b=$!; pids+=("$pid_b")
  wait_for 20 ctlb initstate || fail "B did not start: $(cat "$tmp/b.log")"
  [ "$(ctlb backing_dev)" = "nbd+unix:///?socket=$tmp/a.sock" ] || fail "backing_dev shows $(ctlb backing_dev)"
  blocks write 0 2047 > /dev/null
  ctlb writeback page_indexes=0-1023 || fail "writeback to a live remote"
  read -r count _ _ <<<"$(ctlb bd_stat)"
  [ "$count" = 682 ] || fail "bd_count $count after writeback (682 blocks are not same-filled)"
  [ "$(blocks check 0 2047)" = "check 2048 0" ] || fail "read-back (packed=$packed)"
  [ "$(stat_b backing_connected)" = 1 ] || fail "not connected"
  if [ "$packed" = 0 ]; then  # libnbd is loaded (dlopen) only by a remote tier
    ! grep -q libnbd /proc/"$pid_a"/maps || fail "a server with no remote tier mapped libnbd"
    grep -q libnbd /proc/"$pid_b"/maps || fail "a server with a remote tier did not map libnbd"
  fi

  kill -9 "$pid_a"; wait "$pid_a" 2>/dev/null || true
  rc=0; ctlb writeback page_indexes=1024-2047 2> "$tmp/err" || rc=$?
  [ $rc -ne 0 ] && grep -q "unreachable" "$tmp/err" || fail "writeback to a dead remote: rc $rc: $(cat "$tmp/err")"
  read -r count _ _ <<<"$(ctlb bd_stat)"
  [ "$count" = 682 ] || fail "bd_count $count after the failed writeback"
  [ "$(blocks check 1024 2047)" = "check 1024 0" ] || fail "RAM copies after the failed writeback"
  # Same-filled blocks never left the slot table: of 0..1023 only the 682 others fail.
  [ "$(blocks check 0 1023)" = "check 342 682" ] || fail "reads of remote-only blocks: $(blocks check 0 1023)"
  [ "$(stat_b failed_backing_reads)" = 682 ] || fail "failed_backing_reads $(stat_b failed_backing_reads)"
  read -r failed_reads _ <<<"$(ctlb io_stat)"
  [ "$failed_reads" = 682 ] || fail "io_stat failed_reads $failed_reads"
  kill -0 "$pid_b" || fail "B died with its remote"

  start_a  # empty: a uzram store is RAM
  wait_for 20 connected_b || fail "B did not reconnect: $(ctlb debug_stat)"
  [ "$(stat_b backing_reconnects)" = 1 ] || fail "reconnects $(stat_b backing_reconnects)"
  [ "$(stat_b backing_lost)" -gt 0 ] || fail "no block marked lost"
  [ "$(blocks check 0 1023)" = "check 342 682" ] || fail "lost blocks read after the restart"
  ctlb writeback page_indexes=1024-2047 || fail "writeback after the reconnect"
  [ "$(blocks check 1024 2047)" = "check 1024 0" ] || fail "read-back after the reconnect"
  blocks write 0 1023 1 > /dev/null  # overwrites free the lost blocks
  [ "$(stat_b backing_lost)" = 0 ] || fail "lost blocks left after overwriting them"
  [ "$(blocks check 0 1023 1)" = "check 1024 0" ] || fail "overwritten blocks"
  echo "ok remote tier on uzram serve (compressed_writeback=$packed): kill, EIO, reconnect"
  kill "$pid_b" "$pid_a"; wait "$pid_b" "$pid_a" 2>/dev/null || true
done
