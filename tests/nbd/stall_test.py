# tests/nbd/stall_test.py URI TIMEOUT [--tls]: a client that asks for 32 MiB reads and stops
# reading replies. The server must close it once a reply made no progress for TIMEOUT
# seconds (--send-timeout), without reading its remaining requests for nobody; meanwhile
# another client is served. Exit 0 when all that holds.
import socket
import sys
import time

import nbdraw as r

uri, timeout, tls = sys.argv[1], float(sys.argv[2]), "--tls" in sys.argv


def connect():
    s = r.connect(uri, timeout=timeout * 4 + 10)
    r.hello(s)
    if tls:
        assert r.starttls(s)
        s = r.client_context().wrap_socket(s)
    r.go(s)
    return s


s = connect()
for i in range(16):
    r.request(s, r.CMD_READ, 0, 32 << 20, cookie=i)
t0 = time.monotonic()
time.sleep(timeout + 2)
other = connect()  # someone else is served meanwhile
r.request(other, r.CMD_READ, 0, 4096)
assert r.simple_reply(other, 4096)[0] == 0
other.close()
got = 0
try:  # what was in flight before the server gave up, then the end
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        got += len(b)
except (ConnectionError, OSError):
    pass
print("stalled reader: closed after %.1f s with %d of %d reply bytes delivered"
      % (time.monotonic() - t0, got, 16 * (16 + (32 << 20))))
sys.exit(0 if got < (32 << 20) + 16 else 1)
