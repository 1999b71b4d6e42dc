#!/usr/bin/env bash
# A client that stops reading replies (stall_test.py) is closed once a reply makes no
# progress for --send-timeout, plain and over TLS, and its queued requests are dropped;
# other clients are served meanwhile and the data written first reads back intact.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
[[ $kind == uzram ]] || skip "stall.sh tests uzram's --send-timeout"
need nbdcopy python3 openssl
mkdir "$tmp/pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -keyout "$tmp/pki/server-key.pem" -out "$tmp/pki/server-cert.pem" 2> /dev/null || skip "openssl"
head -c $((8 << 20)) /dev/urandom > "$tmp/data"
export tmp here
"$uzram" serve -U - --control "$tmp/c.sock" --size 64M --send-timeout 2 --tls=on \
  --tls-certificates "$tmp/pki" --run '
  nbdcopy "$tmp/data" "$uri" || exit 11
  python3 "$here/stall_test.py" "$uri" 2 || exit 12
  python3 "$here/stall_test.py" "$uri" 2 --tls || exit 13
  nbdcopy "$uri" "$tmp/out" || exit 14' || fail "stalled readers (status $?: 11/14 copy, 12 plain, 13 TLS)"
head -c $((8 << 20)) "$tmp/out" | cmp - "$tmp/data" || fail "data changed"
echo "ok clients that stop reading are closed after --send-timeout"
