#!/usr/bin/env bash
# cli/sockets.sh UZRAM - `uzram serve`'s two Unix sockets (NBD and control) as a user meets
# them: created 0700/0600 whatever the umask, unsafe directories and paths refused with a
# message naming the rule, nothing replaced that is not a stale socket, umask untouched.
set -euo pipefail
uzram=${1:?usage: sockets.sh PATH-TO-uzram}
tmp=$(mktemp -d); trap 'chmod -R u+rwx "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Fresh directories (missing levels too): 0700, sockets 0600, under a loose umask.
(umask 000; "$uzram" serve -U "$tmp/n/a/nbd.sock" --control "$tmp/c/b/ctl.sock" --size 1M \
  --run "cd '$tmp' && stat -c '%a %n' n n/a c c/b n/a/nbd.sock c/b/ctl.sock" \
  >"$tmp/modes" 2>&1) || fail "serve in fresh directories: $(cat "$tmp/modes")"
diff -u - "$tmp/modes" <<'M' || fail "modes"
700 n
700 n/a
700 c
700 c/b
600 n/a/nbd.sock
600 c/b/ctl.sock
M

# serve OPTS... must fail (exit 2) with MESSAGE on stderr, leaving no socket behind.
refused() {
  local msg=$1; shift
  local rc=0
  "$uzram" serve --size 1M "$@" --run true >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ $rc -eq 2 ] || fail "serve $*: exit $rc, want 2 ($(cat "$tmp/err"))"
  grep -qF -- "$msg" "$tmp/err" || fail "serve $*: message: $(cat "$tmp/err")"
}
mkdir -m 700 "$tmp/ok"
mkdir "$tmp/open" && chmod 777 "$tmp/open"
refused "writable by group or others" -U "$tmp/open/nbd.sock" --control "$tmp/ok/c.sock"
refused "writable by group or others" -U - --control "$tmp/open/c.sock"
ln -s "$tmp/ok" "$tmp/link"
refused "is a symbolic link" -U - --control "$tmp/link/c.sock"
refused "is a symbolic link" -U "$tmp/link/nbd.sock" --control "$tmp/ok/c.sock"
echo keep > "$tmp/ok/file"
ln -s "$tmp/ok/file" "$tmp/ok/sym.sock"
refused "exists and is a regular file, not a socket" -U - --control "$tmp/ok/file"
refused "exists and is a symbolic link, not a socket" -U "$tmp/ok/sym.sock" --control "$tmp/ok/c.sock"
[ "$(cat "$tmp/ok/file")" = keep ] || fail "a refused path was overwritten"
refused "a directory above the socket directory" -U - --control "$tmp/open/private/c.sock"
if [ "$(id -u)" = 0 ]; then
  mkdir -m 700 "$tmp/nobody" && chown 65534:65534 "$tmp/nobody"
  refused "socket directory is owned by uid 65534" -U - --control "$tmp/nobody/c.sock"
fi
# A live control socket is not taken over; a stale one is replaced.
"$uzram" serve -U - --control "$tmp/ok/c.sock" --size 1M \
  --run "'$uzram' serve -U - --control '$tmp/ok/c.sock' --size 1M --run true" >"$tmp/out" 2>"$tmp/err" &&
  fail "second server on a live control socket started"
grep -q "another server is listening" "$tmp/err" || fail "live socket: $(cat "$tmp/err")"
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$tmp/ok/c.sock" 2>/dev/null ||
  true  # a stale socket file (bound, never listened), when python3 is there
"$uzram" serve -U - --control "$tmp/ok/c.sock" --size 1M --run true || fail "stale socket not replaced"
echo "sockets.sh: ok"
