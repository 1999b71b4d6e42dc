#!/usr/bin/env bash
# Who gets in over TLS. With --tls-verify-peer only clients whose certificate the CA signed
# (libnbd with a good certificate; refused: a certificate from another CA, none, an
# anonymous raw client). Against uzram also: with --tls-psk and --tls-certificates but no
# --tls-verify-peer, certificate key exchanges are refused (a client without the key used to
# get in through one); with both and --tls-verify-peer, either credential works; which
# modes may bind a non-loopback address; the loopback warning.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
export PATH=/usr/bin:$PATH  # python3 with ssl; libnbd's tools
need nbdinfo nbdcopy openssl python3
raw() { python3 "$here/tls_client.py" "$@"; }

# A CA, a server certificate and a client certificate it signs; a rogue CA and a client
# certificate it signs; client directories as libnbd wants them (ca-cert.pem verifies the
# server, client-cert.pem/client-key.pem are presented).
pki=$tmp/pki
mkdir -p "$pki"/{server,good,rogue,none}
ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=$1" \
    -keyout "$pki/$1-key.pem" -out "$pki/$1-cert.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2> /dev/null
}
cert() {  # cert NAME CN CA EXTENDED-KEY-USAGE
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
    -keyout "$pki/$1-key.pem" -out "$pki/$1.csr" 2> /dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$4" > "$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$3-cert.pem" -CAkey "$pki/$3-key.pem" -CAcreateserial \
    -days 2 -out "$pki/$1-cert.pem" -extfile "$pki/$1.ext" 2> /dev/null
}
ca ca && ca rogue && cert server localhost ca serverAuth && cert alice alice ca clientAuth &&
  cert mallory mallory rogue clientAuth || skip "openssl cannot make EC certificates"
cp "$pki/ca-cert.pem" "$pki/server/" && cp "$pki/server-cert.pem" "$pki/server-key.pem" "$pki/server/"
for d in good rogue none; do cp "$pki/ca-cert.pem" "$pki/$d/"; done
cp "$pki/alice-cert.pem" "$pki/good/client-cert.pem" && cp "$pki/alice-key.pem" "$pki/good/client-key.pem"
cp "$pki/mallory-cert.pem" "$pki/rogue/client-cert.pem" && cp "$pki/mallory-key.pem" "$pki/rogue/client-key.pem"
echo "alice:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$tmp/psk"
chmod 600 "$tmp/psk"
head -c $((4 << 20)) /dev/urandom > "$tmp/data"
export pki tmp here

# captive_verify CMD: TLS required, certificates, client certificates verified.
captive_verify() {
  case $kind in
    uzram) "$uzram" serve -U - --control "$tmp/control.sock" --size "$size" --tls=require \
             --tls-certificates "$pki/server" --tls-verify-peer --run "$1" ;;
    nbdkit) nbdkit -U - --tls=require --tls-certificates="$pki/server" --tls-verify-peer memory "$size" --run "$1" ;;
  esac
}
captive_verify '
  s=${uri#*socket=}
  u="nbds+unix:///?socket=$s&tls-certificates=$pki/good"
  nbdcopy "$tmp/data" "$u" && nbdcopy "$u" "$tmp/out" || exit 11
  nbdinfo --size "nbds+unix:///?socket=$s&tls-certificates=$pki/rogue" > /dev/null 2>&1 && exit 12
  nbdinfo --size "nbds+unix:///?socket=$s&tls-certificates=$pki/none" > /dev/null 2>&1 && exit 13
  python3 "$here/tls_client.py" "$uri" > /dev/null 2>&1; [ $? = 1 ] || exit 14
  python3 "$here/tls_client.py" "$uri" "$pki/rogue" > /dev/null 2>&1; [ $? = 1 ] || exit 15
  python3 "$here/tls_client.py" "$uri" "$pki/good" > /dev/null || exit 16
  exit 0' || fail "--tls-verify-peer (status $?: 11 good certificate refused, 12 rogue accepted, 13 none" \
                  "accepted, 14 anonymous raw client accepted, 15 rogue raw client accepted, 16 good raw refused)"
head -c $((4 << 20)) "$tmp/out" | cmp - "$tmp/data" || fail "copy over verified TLS differs"
echo "ok --tls-verify-peer: signed certificates in, others out"

[[ $kind == uzram ]] || exit 0

# PSK and certificates, no --tls-verify-peer: certificate key exchanges refused, PSK works.
"$uzram" serve -U - --control "$tmp/c1.sock" --size 1M --tls-psk "$tmp/psk" --tls-certificates "$pki/server" --run '
  s=${uri#*socket=}
  nbdinfo --size "nbds+unix://alice@/?socket=$s&tls-psk-file=$tmp/psk" > /dev/null || exit 11
  python3 "$here/tls_client.py" "$uri" > /dev/null 2>&1; [ $? = 1 ] || exit 12
  python3 "$here/tls_client.py" "$uri" "$pki/good" > /dev/null 2>&1; [ $? = 1 ] || exit 13
  nbdinfo --size "nbds+unix:///?socket=$s&tls-certificates=$pki/good" > /dev/null 2>&1 && exit 14
  exit 0' 2> "$tmp/err1" || fail "PSK + certificates (status $?: 11 PSK refused, 12 anonymous certificate" \
                                  "exchange accepted, 13/14 an unverified client certificate accepted)"
grep -q "warning: --tls-certificates is not used" "$tmp/err1" || fail "no warning: $(cat "$tmp/err1")"
echo "ok PSK + certificates: only PSK"

# PSK and verified certificates: either credential, nothing else.
"$uzram" serve -U - --control "$tmp/c2.sock" --size 1M --tls-psk "$tmp/psk" --tls-certificates "$pki/server" \
  --tls-verify-peer --run '
  s=${uri#*socket=}
  nbdinfo --size "nbds+unix://alice@/?socket=$s&tls-psk-file=$tmp/psk" > /dev/null || exit 11
  nbdinfo --size "nbds+unix:///?socket=$s&tls-certificates=$pki/good" > /dev/null || exit 12
  python3 "$here/tls_client.py" "$uri" > /dev/null 2>&1; [ $? = 1 ] || exit 13
  python3 "$here/tls_client.py" "$uri" "$pki/rogue" > /dev/null 2>&1; [ $? = 1 ] || exit 14
  exit 0' || fail "PSK + verified certificates (status $?: 11 PSK refused, 12 good certificate refused," \
                  "13 anonymous accepted, 14 rogue accepted)"
echo "ok PSK + verified certificates"

# Certificates without --tls-verify-peer authenticate nobody: an anonymous client gets in
# (encryption only, as nbdkit), so they do not open a non-loopback address.
"$uzram" serve -U - --control "$tmp/c3.sock" --size 1M --tls-certificates "$pki/server" \
  --run 'python3 "$here/tls_client.py" "$uri" > /dev/null' || fail "certificates alone: anonymous client refused"
bind() {  # bind EXPECTED-STATUS ARGS...: a server on 0.0.0.0
  local want=$1 rc=0; shift
  "$uzram" serve --port 0 --bind 0.0.0.0 --control "$tmp/cb.sock" --size 1M "$@" --run true 2> "$tmp/berr" || rc=$?
  [[ $rc -eq $want ]] || fail "--bind 0.0.0.0 $*: exit $rc, want $want: $(cat "$tmp/berr")"
}
bind 2 --tls-certificates "$pki/server"
bind 2 --tls=on --tls-psk "$tmp/psk"
bind 0 --tls-certificates "$pki/server" --tls-verify-peer
bind 0 --tls-psk "$tmp/psk"
bind 0 --force-insecure
grep -q "warning: --force-insecure: every host" "$tmp/berr" || fail "no --force-insecure warning: $(cat "$tmp/berr")"
echo "ok non-loopback needs authenticating TLS"

# Loopback TCP without authentication: a warning; with PSK required: none.
"$uzram" serve --port 0 --control "$tmp/c4.sock" --size 1M --run true 2> "$tmp/err4" || fail "loopback TCP"
grep -q "every local user can read and write" "$tmp/err4" || fail "no loopback warning: $(cat "$tmp/err4")"
"$uzram" serve --port 0 --control "$tmp/c4.sock" --size 1M --tls-psk "$tmp/psk" --run true 2> "$tmp/err5" || fail "TCP+PSK"
grep -q "warning" "$tmp/err5" && fail "warning with PSK required: $(cat "$tmp/err5")"
rc=0; "$uzram" serve -U - --control "$tmp/c5.sock" --tls-verify-peer --run true 2> /dev/null || rc=$?
[[ $rc -eq 1 ]] || fail "--tls-verify-peer without --tls-certificates: exit $rc, want 1"
rc=0; "$uzram" serve -U - --control "$tmp/c5.sock" --tls-certificates "$pki/good" --tls-verify-peer --run true \
  2> "$tmp/err6" || rc=$?
[[ $rc -eq 2 ]] && grep -q "server-cert.pem" "$tmp/err6" || fail "bad certificate dir: exit $rc, $(cat "$tmp/err6")"
echo "ok warnings and usage"
