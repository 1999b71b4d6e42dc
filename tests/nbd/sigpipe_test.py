# tests/nbd/sigpipe_test.py - one abrupt client per call (sigpipe.sh runs them):
#   clienthello URI       STARTTLS, one ClientHello, close at once
#   read-reset URI N      NBD_OPT_GO, a READ of N bytes, close with a reset, unread
#   write-reset URI N     a WRITE header and half of its N bytes, then a reset
#   bad-magic URI COUNT   COUNT connections that break the protocol (each logs a line)
#   partial-tls URI       STARTTLS, half a ClientHello, close
import sys
import time

import nbdraw as r

what, uri = sys.argv[1], sys.argv[2]
if what == "clienthello":
    s = r.connect(uri)
    r.hello(s)
    assert r.starttls(s), "STARTTLS refused"
    s.sendall(r.client_hello())
    r.reset(s)
elif what == "partial-tls":
    s = r.connect(uri)
    r.hello(s)
    assert r.starttls(s), "STARTTLS refused"
    ch = r.client_hello()
    s.sendall(ch[: len(ch) // 2])
    r.reset(s)
elif what == "read-reset":
    n = int(sys.argv[3])
    s = r.connect(uri)
    r.hello(s)
    r.go(s)
    r.request(s, r.CMD_READ, 0, n)
    r.recv(s, 16)  # the reply has started: the server is writing
    r.reset(s)
elif what == "write-reset":
    n = int(sys.argv[3])
    s = r.connect(uri)
    r.hello(s)
    r.go(s)
    r.request(s, r.CMD_WRITE, 1 << 30, n)  # past the end: refused, payload skipped
    s.sendall(b"\0" * (n // 2))
    r.reset(s)
elif what == "bad-magic":
    for _ in range(int(sys.argv[3])):
        s = r.connect(uri)
        r.hello(s)
        s.sendall(b"\xff" * 16)
        r.refused(s)
        s.close()
else:
    sys.exit("unknown case " + what)
time.sleep(0.2)  # let the server notice before the caller checks it
