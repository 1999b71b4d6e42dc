# tests/nbd/tls_client.py URI [CERTDIR]: a raw client that does STARTTLS with Python's ssl
# (X.509; no certificate unless CERTDIR holds client-cert.pem and client-key.pem), then
# NBD_OPT_GO and a 4 KiB READ. Exit 0 when served, 1 when refused (the handshake failed,
# the server closed, or it answered with an error), 2 when STARTTLS itself was refused.
import socket
import ssl
import sys

import nbdraw as r

uri = sys.argv[1]
certdir = sys.argv[2] if len(sys.argv) > 2 else None
s = r.connect(uri, timeout=15)
r.hello(s)
if not r.starttls(s):
    sys.exit(2)
try:
    t = r.client_context(certdir).wrap_socket(s)
    t.settimeout(15)
    r.go(t)
    r.request(t, r.CMD_READ, 0, 4096)
    err, _, _ = r.simple_reply(t, 4096)
except (ssl.SSLError, EOFError, ConnectionError, AssertionError, socket.timeout) as e:
    print("refused:", type(e).__name__, e)
    sys.exit(1)
print("served" if err == 0 else "error %d" % err)
sys.exit(0 if err == 0 else 1)
