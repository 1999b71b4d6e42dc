#!/usr/bin/env bash
# `uzram serve` under a service manager (docs/uzram-serve.md#systemd): with $NOTIFY_SOCKET
# set it sends READY=1 (with STATUS= and MAINPID=) once it serves, RELOADING=1 then READY=1
# on SIGHUP (and goes on serving), STOPPING=1 on SIGTERM. The datagrams are received by a
# python3 listener standing in for systemd.
here=$(dirname "$0")
source "$here/lib.sh"
[[ $kind == uzram ]] || skip "notify.sh tests uzram serve only"
need python3 nbdinfo
sock=$tmp/notify.sock
python3 - "$sock" "$tmp/messages" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        try:
            m = s.recv(4096).decode()
        except socket.timeout:
            break
        out.write(m.replace("\n", " ") + "\n")
        if "STOPPING=1" in m:
            break
PY
listener=$!
for _ in $(seq 50); do [[ -S $sock ]] && break; sleep 0.1; done
[[ -S $sock ]] || fail "listener did not start"
NOTIFY_SOCKET=$sock "$uzram" serve -U "$tmp/nbd.sock" --control "$tmp/c.sock" --size 8M \
  >"$tmp/out" 2>"$tmp/err" &
server=$!
wait_for() {  # wait_for PATTERN: a message matching it arrived
  for _ in $(seq 100); do grep -q -- "$1" "$tmp/messages" 2>/dev/null && return 0; sleep 0.1; done
  fail "no '$1' from the server; got: $(cat "$tmp/messages" 2>/dev/null)"
}
wait_for 'READY=1'
grep -q "READY=1 STATUS=serving nbd+unix:///?socket=$tmp/nbd.sock MAINPID=$server" "$tmp/messages" ||
  fail "READY message: $(cat "$tmp/messages")"
nbdinfo "nbd+unix:///?socket=$tmp/nbd.sock" >/dev/null || fail "not serving when READY"
kill -HUP "$server"
wait_for 'RELOADING=1'
for _ in $(seq 100); do
  [[ $(grep -c 'READY=1' "$tmp/messages") -ge 2 ]] && break
  sleep 0.1
done
[[ $(grep -c 'READY=1' "$tmp/messages") -ge 2 ]] || fail "no READY=1 after RELOADING=1"
kill -0 "$server" || fail "SIGHUP stopped the server"
grep -q libsystemd "/proc/$server/maps" || fail "libsystemd not loaded under systemd"
nbdinfo "nbd+unix:///?socket=$tmp/nbd.sock" >/dev/null || fail "not serving after SIGHUP"
kill -TERM "$server"
rc=0; wait "$server" || rc=$?
[[ $rc -eq 0 ]] || fail "exit $rc after SIGTERM: $(cat "$tmp/err")"
wait_for 'STOPPING=1'
wait "$listener" || true
order=$(grep -o 'READY=1\|RELOADING=1\|STOPPING=1' "$tmp/messages" | tr '\n' ' ')
[[ $order == "READY=1 RELOADING=1 READY=1 STOPPING=1 " ]] || fail "messages in order: $order"
echo "ok sd_notify: $order"
# Outside systemd (no $NOTIFY_SOCKET) libsystemd and what it pulls in are not mapped.
( unset NOTIFY_SOCKET
  "$uzram" serve -U - --control "$tmp/c2.sock" --size 8M \
    --run 'if grep -q libsystemd /proc/$PPID/maps; then exit 1; fi' ) ||
  fail "a server outside systemd maps libsystemd"
echo "ok libsystemd loaded only under systemd"
