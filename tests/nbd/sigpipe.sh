#!/usr/bin/env bash
# Clients that vanish abruptly, over TLS or not, never take the server down (issue 9: no
# SIGPIPE anywhere, no close_notify to a dead peer, a closed log pipe is harmless). After
# each case the server still answers and the data written first reads back intact.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
[[ $kind == uzram ]] || skip "sigpipe.sh runs uzram servers in the background"
export PATH=/usr/bin:$PATH  # nbdsh needs the system python3 (python3-libnbd)
need nbdcopy nbdinfo nbdsh python3
nbdsh -c pass 2>/dev/null || skip "nbdsh cannot import the nbd module (Debian: python3-libnbd)"
raw() { python3 "$here/sigpipe_test.py" "$@"; }
# nbdsh_on URI [--opt] PYTHON...: nbdsh on URI (local files such as tls-psk-file allowed).
nbdsh_on() {
  local u=$1 opt=False; shift
  [[ $1 == --opt ]] && { opt=True; shift; }
  local c=(); for x in "$@"; do c+=(-c "$x"); done
  nbdsh -c "h.set_uri_allow_local_file(True); h.set_opt_mode($opt); h.connect_uri('$u')" "${c[@]}"
}
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

echo "alice:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$tmp/psk"
chmod 600 "$tmp/psk"
head -c $((16 << 20)) /dev/urandom > "$tmp/data"

# start NAME ARGS...: a background server; its URI in $uri_NAME, pid in $pid_NAME.
start() {
  local name=$1; shift
  # The files exist before the server starts: the loop below may read them before the
  # background job's redirections ran (a missing file failed the pipeline, and set -e
  # ended the script without a word: stop 20's CI failure).
  : > "$tmp/$name.out"; : > "$tmp/$name.err"
  "$uzram" serve --control "$tmp/$name.ctl" --size 256M "$@" > "$tmp/$name.out" 2> "$tmp/$name.err" &
  local p=$! u=
  pids+=("$p")
  for _ in $(seq 200); do u=$(sed -n '1s/^uzram serve: //p' "$tmp/$name.out"); [[ -n $u ]] && break; sleep 0.05; done
  [[ -n $u ]] || fail "$name: server did not start: $(cat "$tmp/$name.err")"
  printf -v "uri_$name" %s "$u"
  printf -v "pid_$name" %s "$p"
}
# alive NAME WHAT: the server is running and serves a new client.
alive() {
  local p u
  p=pid_$1 u=check_$1
  kill -0 "${!p}" 2>/dev/null || { wait "${!p}"; fail "$2 killed the $1 server (status $?): $(tail -3 "$tmp/$1.err")"; }
  nbdinfo --size "${!u}" > /dev/null || fail "$1 server no longer serves after: $2"
  echo "ok $1 survives: $2"
}

# TLS (PSK) required on a Unix socket.
start unix -v -U "$tmp/nbd.sock" --tls-psk "$tmp/psk"
check_unix="nbds+unix://alice@/?socket=$tmp/nbd.sock&tls-psk-file=$tmp/psk"
nbdcopy "$tmp/data" "$check_unix" || fail "initial copy"

mkfifo "$tmp/fifo"
(head -c $((1 << 20)) > /dev/null; touch "$tmp/started"; sleep 60) < "$tmp/fifo" &
reader=$!
nbdcopy --connections=2 --requests=16 "$check_unix" - > "$tmp/fifo" &
copier=$!
for _ in $(seq 200); do [[ -e $tmp/started ]] && break; sleep 0.05; done
[[ -e $tmp/started ]] || fail "nbdcopy did not start"
sleep 0.2
kill -9 "$copier"; wait "$copier" 2>/dev/null || true
kill "$reader"; wait "$reader" 2>/dev/null || true
alive unix "a PSK nbdcopy killed with -9 mid-transfer"

nbdsh_on "$check_unix" --opt 'import os; os._exit(0)'
alive unix "a client closing right after the TLS handshake, without close_notify"
raw clienthello "nbd+unix:///?socket=$tmp/nbd.sock"
alive unix "one ClientHello, then close"
raw partial-tls "nbd+unix:///?socket=$tmp/nbd.sock"
alive unix "half a ClientHello, then close"
nbdsh_on "$check_unix" 'h.pread(1 << 20, 0)' 'import os; os._exit(0)'
alive unix "an nbdsh TLS-PSK session ending without TLS close"
nbdsh_on "$check_unix" 'h.pread(1 << 20, 0)'
alive unix "an nbdsh TLS-PSK session ending normally"

# TCP, STARTTLS offered but not required.
start tcp -v --port 0 --tls=on --tls-psk "$tmp/psk"
tcp_uri=$uri_tcp
check_tcp=$tcp_uri
nbdcopy "$tmp/data" "$tcp_uri" || fail "initial TCP copy"
raw read-reset "$tcp_uri" $((32 << 20))
alive tcp "a 32 MiB READ over TCP, then a reset"
raw write-reset "$tcp_uri" $((32 << 20))
alive tcp "half of a 32 MiB WRITE payload, then a reset"
raw clienthello "$tcp_uri"
alive tcp "a ClientHello over TCP, then a reset"
host=${tcp_uri#nbd://}; host=${host%/}
nbdcopy --connections=2 "nbds://alice@$host/?tls-psk-file=$tmp/psk" - | head -c $((1 << 20)) > /dev/null || true
alive tcp "a PSK nbdcopy over TCP whose output pipe closed"

# `uzram serve -v 2>&1 | head -n 1`: the log pipe closes; later lines must not kill it.
mkfifo "$tmp/logpipe"
head -n 1 < "$tmp/logpipe" > "$tmp/head.out" &
headpid=$!
"$uzram" serve -v -U "$tmp/v.sock" --control "$tmp/v.ctl" --size 64M > "$tmp/logpipe" 2>&1 &
pid_v=$!
pids+=("$pid_v")
check_v="nbd+unix:///?socket=$tmp/v.sock"
wait "$headpid"
for _ in $(seq 100); do [[ -S $tmp/v.sock ]] && break; sleep 0.05; done
raw bad-magic "$check_v" 20
nbdcopy "$tmp/data" "$check_v" || fail "copy to the server with a closed log pipe"
alive v "log lines written to a closed pipe"

nbdcopy "$check_unix" "$tmp/out.unix" || fail "read back (unix)"
head -c $((16 << 20)) "$tmp/out.unix" | cmp - "$tmp/data" || fail "data changed (unix)"
nbdcopy "$check_tcp" "$tmp/out.tcp" || fail "read back (tcp)"
head -c $((16 << 20)) "$tmp/out.tcp" | cmp - "$tmp/data" || fail "data changed (tcp)"
nbdcopy "$check_v" "$tmp/out.v" || fail "read back (v)"
head -c $((16 << 20)) "$tmp/out.v" | cmp - "$tmp/data" || fail "data changed (v)"
for n in unix tcp v; do
  p=pid_$n
  kill -TERM "${!p}"
  rc=0; wait "${!p}" || rc=$?
  [[ $rc -eq 0 ]] || fail "$n server: exit status $rc after SIGTERM"
done
pids=()
echo "ok data intact, clean shutdown"
