#!/usr/bin/env bash
# Thread creation failing in the server (as under a pids cgroup or RLIMIT_NPROC), through
# the fault-injection seam UZRAM_FAULT_THREAD_CREATE (util/thread.h): each failure refuses
# or closes that one connection with a log line; the server keeps serving the others with
# the stored data intact.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
[[ $kind == uzram ]] || skip "faults.sh tests uzram's fault-injection seam"
need nbdcopy python3

# Thread 1 is the accept thread: the server cannot start, and says so (no abort).
rc=0
UZRAM_FAULT_THREAD_CREATE=1 "$uzram" serve -U - --control "$tmp/c0.sock" --size 1M --run true 2> "$tmp/err0" || rc=$?
[[ $rc -eq 2 ]] && grep -q "cannot start the accept thread" "$tmp/err0" || fail "accept thread failure: exit $rc, $(cat "$tmp/err0")"
echo "ok no accept thread: clean error"

# With -t 2, thread creations are: 1 acceptor; per connection its thread, then 2 workers.
#   A: thread 2 fails            -> refused before the greeting
#   B: thread 3 ok, worker 4 fails -> closed after the handshake (no worker at all)
#   C: threads 5, 6, 7 ok        -> served
#   D: thread 8 ok, worker 9 ok, worker 10 fails -> served by one worker
head -c $((8 << 20)) /dev/urandom > "$tmp/data"
export tmp here
UZRAM_FAULT_THREAD_CREATE=2,4,10 "$uzram" serve -v -t 2 -U - --control "$tmp/c.sock" --size 64M --run '
python3 - <<PY || exit 11
import sys
sys.path.insert(0, "$here")
import nbdraw as r

def client(expect):
    s = r.connect("$uri")
    try:
        r.hello(s)
        r.go(s)
        r.request(s, r.CMD_WRITE, 0, 5, payload=b"hello")
        ok = r.simple_reply(s)[0] == 0
    except (EOFError, ConnectionError):
        ok = False
    assert ok == expect, "client expected to %s" % ("work" if expect else "be refused")
    s.close()

client(False)  # A
client(False)  # B
client(True)   # C
client(True)   # D
PY
nbdcopy --connections=1 "$tmp/data" "$uri" || exit 12
nbdcopy --connections=1 "$uri" "$tmp/out" || exit 13
' 2> "$tmp/err" || fail "faults (status $?: 11 a client, 12/13 nbdcopy): $(tail -5 "$tmp/err")"
head -c $((8 << 20)) "$tmp/out" | cmp - "$tmp/data" || fail "data changed"
grep -q "cannot start a thread for connection" "$tmp/err" || fail "no log line for the refused connection"
grep -q "no worker thread for this connection" "$tmp/err" || fail "no log line for the worker-less connection"
grep -q "cannot start worker thread 2 of 2" "$tmp/err" || fail "no log line for the missing worker"
echo "ok thread failures refuse one connection each; data intact"

# A real task limit, not the seam: the server moved into a pids cgroup (v1, or v2 where
# the pids controller is delegated) that leaves it room for two more tasks, then 12
# clients at once. Most cannot get a thread; the server refuses them one by one and
# stays up; with the limit lifted, the data written before is read back intact.
cgroot=""
if [[ -d /sys/fs/cgroup/pids && -w /sys/fs/cgroup/pids ]]; then
  cgroot=/sys/fs/cgroup/pids
elif [[ -f /sys/fs/cgroup/cgroup.subtree_control ]] && grep -qw pids /sys/fs/cgroup/cgroup.subtree_control &&
     [[ -w /sys/fs/cgroup ]]; then
  cgroot=/sys/fs/cgroup
fi
if [[ -z $cgroot ]] || ! mkdir "$cgroot/uzram-faults-$$" 2>/dev/null; then
  echo "ok (pids cgroup part skipped: no writable pids cgroup here)"
  exit 0
fi
export cg="$cgroot/uzram-faults-$$"
cleanup_cg() {
  # Move whatever is left back to the root, then remove the group.
  if [[ -f $cg/cgroup.procs ]]; then
    while read -r p; do echo "$p" > "$cgroot/cgroup.procs" 2>/dev/null || true; done < "$cg/cgroup.procs"
    rmdir "$cg" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup_cg EXIT
"$uzram" serve -v -t 2 -U - --control "$tmp/c2.sock" --size 64M --run '
nbdcopy --connections=1 "$tmp/data" "$uri" || exit 24
echo $PPID > "$cg/cgroup.procs" || exit 20
echo $(( $(cat "$cg/pids.current") + 2 )) > "$cg/pids.max" || exit 21
python3 - <<PY || exit 22
import sys
sys.path.insert(0, "$here")
import nbdraw as r
socks, served = [], 0
for i in range(12):
    try:
        s = r.connect("$uri")
        r.hello(s)
        r.go(s)
        r.request(s, r.CMD_WRITE, 16 << 20, 5, payload=b"hello")  # past the data
        served += r.simple_reply(s)[0] == 0
        socks.append(s)
    except (EOFError, ConnectionError, OSError):
        pass
assert served < 12, "the limit refused nobody: %d served" % served
for s in socks:
    s.close()
PY
echo max > "$cg/pids.max" || exit 23
nbdcopy --connections=1 "$uri" "$tmp/out2" || exit 25
' 2> "$tmp/err2" || fail "pids cgroup (status $?): $(tail -5 "$tmp/err2")"
head -c $((8 << 20)) "$tmp/out2" | cmp - "$tmp/data" || fail "data changed under the pids limit"
grep -qE "cannot start (a thread for connection|worker thread)|no worker thread" "$tmp/err2" ||
  fail "no log line for the connections the limit refused: $(tail -5 "$tmp/err2")"
echo "ok a pids cgroup at its limit refuses connections; the server stays up, data intact"
