#!/usr/bin/env bash
# Slow handshakes (slowloris_test.py): the handshake deadline is absolute, for plain and TLS
# trickles alike; and 100 clients trickling one byte every 3 s, reconnecting whenever they
# are closed, neither keep a good client out for the deadline (10 s) nor take the slots of
# 40 connections already in transmission: neither naive ones (byte by byte from the start:
# they never get a thread) nor smart ones (a whole first option at once, then byte by
# byte: they get threads, and are evicted). The data written first reads back intact.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
[[ $kind == uzram ]] || skip "slowloris.sh measures uzram's admission policy"
need nbdcopy python3
slow() { python3 "$here/slowloris_test.py" "$@"; }
echo "alice:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$tmp/psk"
chmod 600 "$tmp/psk"
head -c $((8 << 20)) /dev/urandom > "$tmp/data"
export tmp here

"$uzram" serve -U - --control "$tmp/c1.sock" --size 64M --handshake-timeout 2 --tls=on --tls-psk "$tmp/psk" --run '
  python3 "$here/slowloris_test.py" "$uri" --attackers 4 --interval 0.3 --duration 4 --transmission 2 \
    --deadline 2 --expect-timeout 2 || exit 11
  python3 "$here/slowloris_test.py" "$uri" --attackers 4 --interval 0.3 --duration 4 --transmission 2 \
    --deadline 2 --expect-timeout 2 --tls || exit 12' || fail "handshake deadline (status $?: 11 plain, 12 TLS)"
echo "ok the deadline holds against trickling, plain and TLS"

"$uzram" serve -U - --control "$tmp/c2.sock" --size 64M --run '
  nbdcopy "$tmp/data" "$uri" || exit 11
  python3 "$here/slowloris_test.py" "$uri" --attackers 100 --interval 3 --duration 10 --transmission 40 \
    --deadline 10 || exit 12
  python3 "$here/slowloris_test.py" "$uri" --attackers 100 --interval 3 --duration 10 --transmission 40 \
    --deadline 10 --smart || exit 13
  nbdcopy "$uri" "$tmp/out" || exit 14' || fail "slowloris flood (status $?: 11/14 copy, 12 naive, 13 smart)"
head -c $((8 << 20)) "$tmp/out" | cmp - "$tmp/data" || fail "data changed"
echo "ok a good client gets in under a slowloris flood; data intact"
