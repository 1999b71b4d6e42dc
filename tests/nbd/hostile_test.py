# tests/nbd/hostile_test.py - raw-socket clients that break the protocol: truncated
# handshakes, unknown options and commands, bad flags, oversized payloads, clients that
# vanish mid-request, many idle clients. The server must answer each with the protocol's
# error or a close, and keep serving everyone else with nothing lost.
import os
import socket
import struct

uri = os.environ["uri"]
path = uri.split("socket=", 1)[1]
IHAVEOPT = 0x49484156454F5054
REQ = 0x25609513


def sock():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def recv(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


def hello(s, flags=3):
    magic, opt, hflags = struct.unpack(">QQH", recv(s, 18))
    assert magic == 0x4E42444D41474943 and opt == IHAVEOPT, (magic, opt)
    s.sendall(struct.pack(">I", flags))


def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)


def opt_reply(s):
    magic, opt, typ, n = struct.unpack(">QIII", recv(s, 20))
    assert magic == 0x3E889045565A9, hex(magic)
    return opt, typ, recv(s, n)


def go(s):
    hello(s)
    option(s, 7, struct.pack(">IH", 0, 0))
    while True:
        _, typ, data = opt_reply(s)
        if typ == 1:
            return
        assert typ == 3, typ


def request(s, typ, off, length, flags=0, cookie=1, payload=b""):
    s.sendall(struct.pack(">IHHQQI", REQ, flags, typ, cookie, off, length) + payload)


def simple_reply(s, want_data=0):
    magic, err, cookie = struct.unpack(">IIQ", recv(s, 16))
    assert magic == 0x67446698, hex(magic)
    data = recv(s, want_data) if err == 0 and want_data else b""
    return err, cookie, data


def closed(s):
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


# A good client that stays connected throughout and checks its data at the end.
good = sock()
go(good)
request(good, 1, 12345, 5, payload=b"hello")
assert simple_reply(good)[0] == 0

# Many idle clients, some mid-handshake.
idle = [sock() for _ in range(20)]
for s in idle[:10]:
    recv(s, 18)

# Truncated handshakes and bad magic: closed.
s = sock(); hello(s); s.sendall(b"\x00\x01"); s.close()
s = sock(); hello(s); s.sendall(struct.pack(">QII", 0x1234, 7, 0)); assert closed(s)
s = sock(); recv(s, 18); s.sendall(struct.pack(">I", 0x80)); assert closed(s)

# Unknown option: ERR_UNSUP and the handshake goes on; option data beyond the bound.
s = sock(); hello(s)
option(s, 99, b"x" * 10)
assert opt_reply(s)[1] == 0x80000001
option(s, 7, b"\0" * 70000)
assert opt_reply(s)[1] & 0x80000000
option(s, 3)  # LIST
opt, typ, data = opt_reply(s)
assert typ == 2, typ
while typ != 1:
    _, typ, _ = opt_reply(s)
option(s, 2)  # ABORT
s.close()

# Transmission: unknown command, bad flags, past the end, oversized write payload skipped.
s = sock(); go(s)
request(s, 77, 0, 1, cookie=2)
assert simple_reply(s)[:2] == (22, 2)
request(s, 0, 0, 1, flags=0x40, cookie=3)
assert simple_reply(s)[:2] == (22, 3)
request(s, 0, 1 << 62, 512, cookie=4)
assert simple_reply(s)[:2] == (22, 4)
request(s, 0, 0, 0x7FFFFFFF, cookie=5)
err, c, _ = simple_reply(s)
assert c == 5 and err != 0
request(s, 0, 12345, 5, cookie=6)
err, c, data = simple_reply(s, 5)
assert (err, c, data) == (0, 6, b"hello"), (err, c, data)
# Vanish in the middle of a write payload, and with requests in flight.
request(s, 1, 0, 65536, cookie=7, payload=b"z" * 1000)
s.close()
s = sock(); go(s)
for i in range(32):
    request(s, 0, i * 4096, 4096, cookie=i)
s.close()
# Bad request magic: closed.
s = sock(); go(s)
s.sendall(struct.pack(">IHHQQI", 0xDEADBEEF, 0, 0, 1, 0, 1))
assert closed(s)

# A client that sends requests and never reads replies meets backpressure: the server stops
# reading instead of queueing without bound.
s = sock(); go(s); s.settimeout(2)
blob = struct.pack(">IHHQQI", REQ, 0, 3, 1, 0, 0) * 1000  # 1000 FLUSH requests
sent = 0
try:
    for _ in range(400):
        s.sendall(blob)
        sent += 1
except socket.timeout:
    pass
assert sent < 400, "400000 requests queued without the client reading a reply"
s.close()

for s in idle:
    s.close()

# The good client is still served, its data intact.
request(good, 0, 12345, 5, cookie=9)
assert simple_reply(good, 5) == (0, 9, b"hello")
request(good, 2, 0, 0)  # DISC
good.close()
print("ok hostile clients")
