# tests/nbd/nbdraw.py - a raw NBD client for the attack tests (sigpipe_test.py, auth.sh,
# slowloris_test.py): sockets to nbd+unix:// and nbd:// URIs, the fixed-newstyle
# handshake, STARTTLS with Python's ssl (X.509 only: Python before 3.13 has no PSK), and a
# ClientHello made without a peer.
import socket
import ssl
import struct

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPLYMAGIC = 0x3E889045565A9
REQ = 0x25609513
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_INFO, OPT_GO = 1, 2, 3, 5, 6, 7
OPT_STRUCTURED_REPLY = 8
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
REP_ERR_TLS_REQD = (1 << 31) | 5
CMD_READ, CMD_WRITE, CMD_DISC = 0, 1, 2


def connect(uri, timeout=20):
    """A plain socket to nbd+unix:///?socket=PATH or nbd://HOST:PORT/."""
    if "socket=" in uri:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        addr = uri.split("socket=", 1)[1].split("&", 1)[0]
    else:
        hostport = uri.split("://", 1)[1].split("/", 1)[0]
        host, port = hostport.rsplit(":", 1)
        host = host.strip("[]")
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        addr = (host, int(port))
    s.settimeout(timeout)
    s.connect(addr)
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
    magic, opt, _ = struct.unpack(">QQH", recv(s, 18))
    assert magic == NBDMAGIC and opt == IHAVEOPT, (hex(magic), hex(opt))
    s.sendall(struct.pack(">I", flags))


def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)


def opt_reply(s):
    magic, opt, typ, n = struct.unpack(">QIII", recv(s, 20))
    assert magic == REPLYMAGIC, hex(magic)
    return opt, typ, recv(s, n)


def go(s, name=""):
    """NBD_OPT_GO on the export `name` (default: the default export); returns its size."""
    n = name.encode()
    option(s, OPT_GO, struct.pack(">I", len(n)) + n + struct.pack(">H", 0))
    size = None
    while True:
        _, typ, data = opt_reply(s)
        if typ == REP_ACK:
            return size
        assert typ == REP_INFO, hex(typ)
        if struct.unpack(">H", data[:2])[0] == 0:
            size = struct.unpack(">Q", data[2:10])[0]


def starttls(s):
    """Sends NBD_OPT_STARTTLS; True when the server acknowledged it."""
    option(s, OPT_STARTTLS)
    _, typ, _ = opt_reply(s)
    return typ == REP_ACK


def client_context(certdir=None, ca=None):
    """A TLS client context: with certdir, its client-cert.pem/client-key.pem; with ca, the
    server is verified against it (hostname not checked), else not verified."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if ca:
        ctx.load_verify_locations(ca)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if certdir:
        ctx.load_cert_chain(certdir + "/client-cert.pem", certdir + "/client-key.pem")
    return ctx


def client_hello():
    """The bytes of a TLS ClientHello (certificate suites), made without a server."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_context().wrap_bio(inc, out, server_side=False)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def request(s, typ, off, length, flags=0, cookie=1, payload=b""):
    s.sendall(struct.pack(">IHHQQI", REQ, flags, typ, cookie, off, length) + payload)


def simple_reply(s, want_data=0):
    magic, err, cookie = struct.unpack(">IIQ", recv(s, 16))
    assert magic == 0x67446698, hex(magic)
    data = recv(s, want_data) if err == 0 and want_data else b""
    return err, cookie, data


def reset(s):
    """Closes with a TCP reset (SO_LINGER 0) where the socket is TCP."""
    if s.family in (socket.AF_INET, socket.AF_INET6):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def refused(s):
    """True when the server closed the connection (EOF, reset or TLS alert)."""
    try:
        while True:
            if s.recv(4096) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError, EOFError):
        return True
    except socket.timeout:
        return False
