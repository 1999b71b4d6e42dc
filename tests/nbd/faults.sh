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
