#!/usr/bin/env bash
# `uzram serve` itself: captive exit status, the control socket, -o attributes, socket
# modes, TCP on loopback only, clean shutdown on SIGTERM.
here=$(dirname "$0")
source "$here/lib.sh"
[[ $kind == uzram ]] || skip "serve.sh tests the uzram command line only"
need nbdinfo

# Captive mode: the server exits with the command's status.
rc=0; "$uzram" serve -U - --control "$tmp/c.sock" --size 1M --run 'exit 3' || rc=$?
[[ $rc -eq 3 ]] || fail "captive exit status $rc, want 3"

# Control socket, attributes before (recomp_algorithm) and after (mem_limit) disksize.
"$uzram" serve -U "$tmp/nbd.sock" --control "$tmp/c.sock" --size 8M --algo zstd \
  -o mem_limit=4M -o 'recomp_algorithm=algo=lz4 priority=1' --run '
  set -e
  [ "$uri" = "nbd+unix:///?socket='"$tmp"'/nbd.sock" ] || { echo "uri $uri"; exit 1; }
  [ "$(stat -c %a '"$tmp"'/nbd.sock)" = 600 ] || { echo "nbd socket mode"; exit 1; }
  [ "$(stat -c %a '"$tmp"'/c.sock)" = 600 ] || { echo "control socket mode"; exit 1; }
  head -c 1048576 /usr/bin/env > '"$tmp"'/blob 2>/dev/null || true
  nbdcopy '"$tmp"'/blob "$uri"
  '"$uzram"' ctl --control '"$tmp"'/c.sock mm_stat > '"$tmp"'/mm_stat
  '"$uzram"' ctl --control '"$tmp"'/c.sock comp_algorithm > '"$tmp"'/algo
  '"$uzram"' ctl --control '"$tmp"'/c.sock recomp_algorithm > '"$tmp"'/recomp
  '"$uzram"' ctl --control '"$tmp"'/c.sock compact 1
' || fail "captive session with control socket"
[[ $(wc -w < "$tmp/mm_stat") -eq 9 ]] || fail "mm_stat: $(cat "$tmp/mm_stat")"
[[ $(awk '{print $1}' "$tmp/mm_stat") -gt 0 ]] || fail "mm_stat shows no data: $(cat "$tmp/mm_stat")"
[[ $(awk '{print $4}' "$tmp/mm_stat") -eq 4194304 ]] || fail "mem_limit not applied: $(cat "$tmp/mm_stat")"
grep -q '\[zstd\]' "$tmp/algo" || fail "comp_algorithm: $(cat "$tmp/algo")"
grep -q 'lz4' "$tmp/recomp" || fail "recomp_algorithm: $(cat "$tmp/recomp")"
[[ -e $tmp/nbd.sock || -e $tmp/c.sock ]] && fail "sockets left behind"
echo "ok control socket, -o, modes"

# Ready to serve, the server drops its startup text (util/text_drop.h): -v says how much
# of the file mappings' RSS went, and the server still serves: data in, data out, same.
head -c 4194304 /dev/urandom > "$tmp/rand"
"$uzram" serve -v -U - --control "$tmp/c.sock" --size 8M --algo zstd -o unit_size=32K --run '
  set -e
  nbdcopy '"$tmp"'/rand "$uri"
  nbdcopy "$uri" '"$tmp"'/back
  cmp -n 4194304 '"$tmp"'/rand '"$tmp"'/back
' 2> "$tmp/err" || fail "serve after the text drop: $(cat "$tmp/err")"
line=$(grep "startup text:" "$tmp/err") || fail "no startup text line: $(cat "$tmp/err")"
read -r before after < <(sed -E 's/.*RSS ([0-9.]+) -> ([0-9.]+) MiB.*/\1 \2/' <<< "$line")
awk -v b="$before" -v a="$after" 'BEGIN { exit !(a + 0.5 < b) }' \
  || fail "file mappings' RSS did not drop: $line"
echo "ok startup text dropped ($before -> $after MiB), data intact"

# The streams give their memory back (docs/uzram-serve.md#memory): held right after a write,
# given back while the client stays connected but idle (the 1 s idle period) and when the
# last connection closes; written data reads back the same from streams made anew.
# nbdsh runs `python3` from PATH: the system one has the nbd module.
if command -v nbdsh > /dev/null && PATH=/usr/bin:$PATH nbdsh -c pass 2> /dev/null; then
  cat > "$tmp/streams.py" <<'EOF'
import os, subprocess, time
def streams():
    out = subprocess.run([os.environ["UZRAM"], "ctl", "--control", os.environ["CSOCK"],
                          "memory"], capture_output=True, text=True, check=True).stdout
    return int(dict(l.split() for l in out.splitlines())["zram0.streams"])
def falls(limit):
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:
        if streams() < limit:
            return True
        time.sleep(0.05)
    return False
data = open(os.environ["RAND"], "rb").read(1 << 20)
t0 = time.monotonic()
h.pwrite(data, 0)
held = streams()
if time.monotonic() - t0 < 0.5:  # well inside the idle period (a busy machine: not checked)
    assert held > 300 << 10, "streams after a write: %d" % held
assert falls(200 << 10), "streams still %d while idle" % streams()
assert h.pread(len(data), 0) == data
EOF
  "$uzram" serve -U - --control "$tmp/c.sock" --size 8M --algo zstd -o unit_size=32K --run '
    set -e
    PATH=/usr/bin:$PATH UZRAM='"$uzram"' CSOCK='"$tmp"'/c.sock RAND='"$tmp"'/rand \
      nbdsh -u "$uri" -c "exec(open(\"'"$tmp"'/streams.py\").read())"
    nbdcopy '"$tmp"'/rand "$uri"
    # The last close gives the streams back before the server closes the socket: well
    # before the 1 s idle timer could (on a machine too busy to tell, up to 20 s).
    t0=$(date +%s%N)
    for _ in $(seq 400); do
      m=$('"$uzram"' ctl --control '"$tmp"'/c.sock memory | awk "/^zram0.streams/ {print \$2}")
      [ "$m" -lt 204800 ] && break
      [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 600 ] || [ -n "${slow:-}" ] ||
        { echo "streams $m 0.6 s after the last connection closed"; slow=1; }
      sleep 0.05
    done
    [ "$m" -lt 204800 ] || { echo "streams $m after the last connection closed"; exit 1; }
    [ -z "${slow:-}" ] || [ $(( ($(date +%s%N) - t0) / 1000000 )) -gt 3000 ] ||
      { echo "given back only by the idle timer, not at the last close"; exit 1; }
    nbdcopy "$uri" '"$tmp"'/back
    cmp -n 4194304 '"$tmp"'/rand '"$tmp"'/back
  ' > "$tmp/err" 2>&1 || fail "streams given back: $(cat "$tmp/err")"
  echo "ok streams given back when idle and after the last connection, data intact"
fi

# Usage errors.
rc=0; "$uzram" serve -U - --control "$tmp/c.sock" -o nosuch=1 --run true 2>/dev/null || rc=$?
[[ $rc -eq 1 ]] || fail "-o nosuch: exit $rc, want 1"
rc=0; "$uzram" serve -U - --control "$tmp/c.sock" --size 0 --run true 2>/dev/null || rc=$?
[[ $rc -eq 1 ]] || fail "--size 0: exit $rc, want 1"

# TCP: loopback works; another address without TLS is refused.
"$uzram" serve --port 0 --control "$tmp/c.sock" --size 1M --run 'case $uri in nbd://127.0.0.1:*) ;; *) exit 9;; esac; nbdinfo --size "$uri" > '"$tmp"'/tcpsize' \
  || fail "TCP on loopback"
[[ $(cat "$tmp/tcpsize") -eq 1048576 ]] || fail "TCP size"
rc=0; "$uzram" serve --port 0 --bind 0.0.0.0 --control "$tmp/c.sock" --run true 2>"$tmp/err" || rc=$?
[[ $rc -eq 2 ]] && grep -q 'force-insecure' "$tmp/err" || fail "non-loopback bind: exit $rc, $(cat "$tmp/err")"
echo "ok tcp"

# SIGTERM: clean shutdown, sockets removed, exit 0.
"$uzram" serve -U "$tmp/s.sock" --control "$tmp/c.sock" --size 1M > "$tmp/out" &
pid=$!
for _ in $(seq 100); do [[ -S $tmp/s.sock ]] && break; sleep 0.05; done
nbdinfo --size "nbd+unix:///?socket=$tmp/s.sock" > /dev/null || fail "server not reachable"
kill -TERM $pid
rc=0; wait $pid || rc=$?
[[ $rc -eq 0 ]] || fail "SIGTERM: exit $rc"
[[ -e $tmp/s.sock || -e $tmp/c.sock ]] && fail "sockets left after SIGTERM"
grep -q "nbd+unix:///?socket=$tmp/s.sock" "$tmp/out" || fail "URI not printed: $(cat "$tmp/out")"
echo "ok SIGTERM"
