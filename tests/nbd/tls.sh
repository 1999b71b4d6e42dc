#!/usr/bin/env bash
# STARTTLS with pre-shared keys: nbdinfo and nbdcopy over TLS; clear text and a wrong key
# are refused.
here=$(dirname "$0")
source "$here/lib.sh"
need nbdinfo nbdcopy
key() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
echo "alice:$(key)" > "$tmp/psk"
echo "alice:$(key)" > "$tmp/wrong"
chmod 600 "$tmp/psk" "$tmp/wrong"
head -c $((4 << 20)) /dev/urandom > "$tmp/data"
export tmp
captive_tls "$tmp/psk" '
  sock=${uri#*socket=}
  u="nbds+unix://alice@/?socket=$sock&tls-psk-file=$tmp/psk"
  nbdinfo "$u" > "$tmp/info" || exit 11
  nbdinfo "$uri" > /dev/null 2>&1 && exit 12
  nbdinfo "nbds+unix://alice@/?socket=$sock&tls-psk-file=$tmp/wrong" > /dev/null 2>&1 && exit 13
  nbdcopy "$tmp/data" "$u" && nbdcopy "$u" "$tmp/out" || exit 14
  exit 0' || fail "TLS session (status $?: 11 TLS refused, 12 clear text accepted, 13 wrong key accepted, 14 copy)"
grep -q "with TLS" "$tmp/info" || fail "nbdinfo: $(head -1 "$tmp/info")"
head -c $((4 << 20)) "$tmp/out" | cmp - "$tmp/data" || fail "TLS copy differs"
echo "ok tls psk"
if command -v openssl > /dev/null; then
  mkdir "$tmp/pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/pki/server-key.pem" -out "$tmp/pki/server-cert.pem" \
    -days 2 -subj /CN=localhost 2> /dev/null
  cp "$tmp/pki/server-cert.pem" "$tmp/pki/ca-cert.pem"
  captive_x509 "$tmp/pki" 'nbdinfo "nbds+unix:///?socket=${uri#*socket=}&tls-certificates=$tmp/pki&tls-verify-peer=false" > "$tmp/info509"' \
    || fail "TLS with X.509"
  grep -q "with TLS" "$tmp/info509" || fail "x509 nbdinfo: $(head -1 "$tmp/info509")"
  echo "ok tls x509"
else
  echo "no openssl: X.509 not tested"
fi
if [[ $kind == uzram ]]; then
  # GnuTLS is loaded only when TLS is configured (src/nbd/tls.cc): a server without it
  # maps no libgnutls (nor p11-kit and the rest), one with it does.
  "$uzram" serve -U - --control "$tmp/c1.sock" --size 1M \
    --run 'grep -c libgnutls /proc/$PPID/maps > "'"$tmp"'/maps-plain"; exit 0' || fail "plain serve"
  [[ $(cat "$tmp/maps-plain") == 0 ]] || fail "a server without TLS mapped libgnutls"
  "$uzram" serve -U - --control "$tmp/c2.sock" --size 1M --tls-psk "$tmp/psk" \
    --run 'grep -c libgnutls /proc/$PPID/maps > "'"$tmp"'/maps-tls"; exit 0' || fail "TLS serve"
  [[ $(cat "$tmp/maps-tls") -gt 0 ]] || fail "a server with TLS did not map libgnutls"
  echo "ok gnutls loaded only with tls"
  "$uzram" serve --port 0 --bind 0.0.0.0 --tls-psk "$tmp/psk" --control "$tmp/c.sock" --size 1M --run true \
    || fail "non-loopback bind with TLS required refused"
  echo "ok non-loopback with tls"
fi
