#!/usr/bin/env bash
# `uzram serve`'s control surface while NBD clients are connected, as the kernel's: reset and
# disksize fail with EBUSY (and say why) while any connection is in transmission; once all
# are gone they work, and the next client sees the new size. Also the command line: -o
# reset refused, --port and --handshake-timeout validated, the new options documented.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
[[ $kind == uzram ]] || skip "serve_ctl.sh tests the uzram command line"
need nbdinfo python3
export here tmp uzram

"$uzram" serve -U - --control "$tmp/c.sock" --size 8M --run '
set -u
ctl() { "$uzram" ctl --control "$tmp/c.sock" "$@"; }
mkfifo "$tmp/hold"
# A client in transmission that stays until told to go (a line on the fifo).
python3 -c "
import sys
sys.path.insert(0, \"$here\")
import nbdraw as r
s = r.connect(\"$uri\")
r.hello(s)
print(r.go(s), flush=True)
open(\"$tmp/hold\").read()
r.request(s, r.CMD_READ, 0, 4096)
assert r.simple_reply(s, 4096)[0] == 0
" > "$tmp/held" &
holder=$!
for _ in $(seq 100); do [ -s "$tmp/held" ] && break; sleep 0.05; done
[ "$(cat "$tmp/held")" = 8388608 ] || exit 11
rc=0; ctl reset 1 2> "$tmp/err" || rc=$?
[ $rc -eq 2 ] && grep -q "reset: device in use by 1 open connection" "$tmp/err" || { cat "$tmp/err"; exit 12; }
rc=0; ctl disksize 16M 2> "$tmp/err" || rc=$?
[ $rc -eq 2 ] && grep -q "disksize: device in use" "$tmp/err" || { cat "$tmp/err"; exit 13; }
[ "$(ctl disksize)" = 8388608 ] || exit 14
echo go > "$tmp/hold"
wait $holder || exit 15
# The connection is gone: reset and a new disksize work, and a new client sees them.
for _ in $(seq 100); do ctl reset 1 2> /dev/null && break; sleep 0.05; done
[ "$(ctl initstate)" = 0 ] || exit 16
nbdinfo --size "$uri" > /dev/null 2>&1 && exit 17  # nothing to serve: refused
ctl disksize 16M || exit 18
[ "$(nbdinfo --size "$uri")" = 16777216 ] || exit 19
exit 0' || fail "EBUSY (status $?: 11 holder, 12 reset, 13 disksize, 14 size changed, 15 holder lost," \
                "16 reset after close, 17 uninitialised store served, 18 disksize, 19 stale size)"
echo "ok reset and disksize refused while a client is connected"

usage() {  # usage WHAT ARGS...: exit status 1 and a message naming WHAT
  local what=$1 rc=0; shift
  "$uzram" serve -U - --control "$tmp/u.sock" --size 1M "$@" --run true 2> "$tmp/uerr" || rc=$?
  [[ $rc -eq 1 ]] && grep -q -- "$what" "$tmp/uerr" || fail "serve $*: exit $rc, want 1: $(cat "$tmp/uerr")"
}
usage "-o reset" -o reset=1
for p in 70000 65536 -1 abc 4464x ""; do
  rc=0; "$uzram" serve --port "$p" --control "$tmp/u.sock" --size 1M --run true 2> "$tmp/uerr" || rc=$?
  [[ $rc -eq 1 ]] && grep -q -- "--port" "$tmp/uerr" || fail "--port '$p': exit $rc: $(cat "$tmp/uerr")"
done
"$uzram" serve --port 0 --control "$tmp/u.sock" --size 1M --run 'case $uri in nbd://127.0.0.1:0/) exit 1;; esac' \
  2> /dev/null || fail "--port 0"
for t in 0 -1 abc 1e3 100000 ""; do
  usage "--handshake-timeout" --handshake-timeout "$t"
  usage "--send-timeout" --send-timeout "$t"
done
"$uzram" serve -U - --control "$tmp/u.sock" --size 1M --handshake-timeout 0.5 --run true || fail "--handshake-timeout 0.5"
"$uzram" serve --help > "$tmp/help"
for o in --handshake-timeout --send-timeout --tls-verify-peer --tls-psk --tls-certificates --port; do
  grep -q -- "$o" "$tmp/help" || fail "serve --help does not mention $o"
done
echo "ok command line"
