# tests/nbd/nbdsh_test.py - each NBD command and its errors, through libnbd's Python
# binding (run by nbdsh.sh inside nbdsh, $uri set by captive mode).
import errno
import os
import random

import nbd

uri = os.environ["uri"]
size = int(os.environ["size"])
rng = random.Random(int(os.environ.get("ZS_TEST_SEED", "1")))


def connect(meta=True, strict=True):
    g = nbd.NBD()
    if meta:
        g.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    g.connect_uri(uri)
    if not strict:
        g.set_strict_mode(0)
    return g


def code(e):
    return e.errno if isinstance(e.errno, int) else getattr(errno, e.errno)


def expect_error(fn, codes, what):
    try:
        fn()
    except nbd.Error as e:
        assert code(e) in codes, "%s: errno %s, want %s" % (what, e.errno, codes)
        return
    raise AssertionError("%s: no error" % what)


def extents(g, off, length, flags=0):
    out = []

    def cb(meta, offset, entries, err):
        if meta == nbd.CONTEXT_BASE_ALLOCATION:
            out.extend(zip(entries[0::2], entries[1::2]))

    g.block_status(length, off, cb, flags)
    return out


def flags_at(ext, start, pos):
    for length, fl in ext:
        if start <= pos < start + length:
            return fl
        start += length
    raise AssertionError("offset %d not covered" % pos)


h = connect()
assert h.get_size() == size
assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
assert h.can_fua() and h.can_flush() and h.can_trim() and h.can_zero() and h.can_fast_zero()
assert h.can_multi_conn()

# READ/WRITE at odd offsets, across block boundaries; FUA; FLUSH.
data = bytes(rng.getrandbits(8) for _ in range(20000))
h.pwrite(data, 4093)
assert h.pread(20000, 4093) == data
assert h.pread(3, 4090) == b"\0\0\0"
h.pwrite(b"xy", 8191, nbd.CMD_FLAG_FUA)
assert h.pread(4, 8190) == data[8190 - 4093:8191 - 4093] + b"xy" + data[8193 - 4093:8194 - 4093]
h.flush()
print("ok read/write/fua/flush")

# WRITE_ZEROES: plain, NO_HOLE, FAST_ZERO, partial blocks.
blob = b"\xab" * (3 << 20)
h.pwrite(blob, 1 << 20)
h.zero(1 << 20, 1 << 20)
h.zero(4096, (2 << 20) + 4096, nbd.CMD_FLAG_NO_HOLE)
h.zero(5000, (3 << 20) + 100, nbd.CMD_FLAG_FAST_ZERO)
assert h.pread(1 << 20, 1 << 20) == b"\0" * (1 << 20)
assert h.pread(4096, (2 << 20) + 4096) == b"\0" * 4096
assert h.pread(5000, (3 << 20) + 100) == b"\0" * 5000
assert h.pread(100, (3 << 20)) == b"\xab" * 100
assert h.pread(4096, (3 << 20) + 5100) == b"\xab" * 4096
print("ok write_zeroes")

# TRIM (advisory: contents unspecified afterwards, but the request succeeds).
h.trim(1 << 20, 3 << 20)
h.trim(1000, (3 << 20) + 7, nbd.CMD_FLAG_FUA)
print("ok trim")

# BLOCK_STATUS base:allocation: data, zeroed, never written; REQ_ONE.
h.pwrite(b"\x01" * 65536, 8 << 20)
h.zero(1 << 20, 9 << 20)
ext = extents(h, 8 << 20, 4 << 20)
assert sum(l for l, _ in ext) <= 4 << 20
assert flags_at(ext, 8 << 20, 8 << 20) & nbd.STATE_ZERO == 0, ext
assert flags_at(ext, 8 << 20, 9 << 20) & nbd.STATE_ZERO, ext
far = extents(h, 32 << 20, 1 << 20)
assert all(fl & nbd.STATE_ZERO for _, fl in far), far
one = extents(h, 8 << 20, 4 << 20, nbd.CMD_FLAG_REQ_ONE)
assert len(one) == 1 and one[0][0] <= 4 << 20, one
print("ok block_status")

# Structured READ replies: the bytes are the same whether a zero run comes as data or as
# a hole chunk. uzram sends runs of whole zero blocks of 64 KiB or more as holes (nbdkit
# memory sends data); with DF the reply is one data chunk.
base = 40 << 20
h.zero(2 << 20, base)
h.pwrite(b"\x11" * 4096, base + 100)
h.pwrite(b"\x22" * 4096, base + (1 << 20))
want = (b"\0" * 100 + b"\x11" * 4096 + b"\0" * ((1 << 20) - 4196) + b"\x22" * 4096 +
        b"\0" * ((1 << 20) - 4096))
seen = []


def chunk(sub, off, status, err):
    seen.append((status, off, len(sub)))
    return 0


assert h.pread_structured(2 << 20, base, chunk) == want
pos = base
for status, off, n in sorted(seen, key=lambda c: c[1]):
    assert off == pos and status in (nbd.READ_DATA, nbd.READ_HOLE), seen
    pos += n
assert pos == base + (2 << 20), seen
if os.environ.get("kind") == "uzram":
    holes = [c for c in seen if c[0] == nbd.READ_HOLE]
    assert len(holes) == 2 and all(n >= 64 << 10 and off % 4096 == 0 for _, off, n in holes), seen
seen.clear()
assert h.pread_structured(2 << 20, base, chunk, nbd.CMD_FLAG_DF) == want
assert [c[0] for c in seen] == [nbd.READ_DATA], seen
seen.clear()
assert h.pread_structured(1 << 16, base + 8192, chunk) == b"\0" * (1 << 16)  # a hole alone
print("ok structured read")

# Errors: past the end, bad flags, oversized; the connection stays usable.
r = connect(strict=False)
expect_error(lambda: r.pread(2, size - 1), (errno.EINVAL,), "read past the end")
expect_error(lambda: r.pwrite(b"ab", size - 1), (errno.EINVAL, errno.ENOSPC), "write past the end")
expect_error(lambda: r.zero(8192, size - 4096), (errno.EINVAL, errno.ENOSPC), "zero past the end")
expect_error(lambda: r.trim(8192, size), (errno.EINVAL, errno.ENOSPC), "trim past the end")
expect_error(lambda: r.pread(1, 0, nbd.CMD_FLAG_NO_HOLE), (errno.EINVAL,), "read with NO_HOLE")
try:
    r.pwrite(b"\x07" * (33 << 20), size - (33 << 20))  # over uzram's 32 MiB bound (nbdkit allows 64 MiB)
except nbd.Error as e:
    assert code(e) == errno.EINVAL, e
assert r.pread(4, 0) == h.pread(4, 0)
r.shutdown()
print("ok errors")

# Many requests in flight on one connection, and two connections at once writing
# interleaved bytes of the same blocks (read-modify-write must not lose either).
a, b = connect(), connect()
base = 16 << 20
want = bytearray(64 * 4096)
cookies = []
for i in range(0, 64 * 4096, 1000):
    chunk = bytes([i % 251]) * 500
    want[i:i + 500] = chunk
    cookies.append(a.aio_pwrite(chunk, base + i))
    chunk2 = bytes([(i + 7) % 251]) * 500
    want[i + 500:i + 1000] = chunk2[: len(want[i + 500:i + 1000])]
    if i + 500 < len(want):
        cookies.append(b.aio_pwrite(chunk2[: len(want) - i - 500] if i + 1000 > len(want) else chunk2, base + i + 500))
while a.aio_in_flight() or b.aio_in_flight():
    for g in (a, b):
        if g.aio_in_flight():
            g.poll(0)
    a.poll(1) if a.aio_in_flight() else None
a.flush()
assert bytes(want) == b.pread(len(want), base), "interleaved writes lost data"
bufs = [nbd.Buffer(4096) for _ in range(64)]
cs = [a.aio_pread(bufs[k], base + k * 4096) for k in range(64)]
while a.aio_in_flight():
    a.poll(-1)
for k in range(64):
    assert a.aio_command_completed(cs[k])
    assert bufs[k].to_bytearray() == want[k * 4096:(k + 1) * 4096]
print("ok in flight, multi-conn")

# Compression units (uzram serve -o unit_size=32K; the same requests on any server): the
# preferred block size, whole 32 KiB units written by one connection while another writes
# a few bytes into the same units (every byte ends as one or the other, never the old),
# a trim and a zero of part of a unit (holes there, data around), reads across units.
unit = int(os.environ.get("UZRAM_UNIT", "0").rstrip("K") or 0) * 1024
if unit:
    assert h.get_block_size(nbd.SIZE_PREFERRED) == unit, h.get_block_size(nbd.SIZE_PREFERRED)
u = 32768
base = 24 << 20
ua, ub = connect(), connect()
ua.pwrite(b"\x11" * (16 * u), base)
cookies = [ua.aio_pwrite(b"\x22" * u, base + k * u) for k in range(16)]
for _ in range(200):
    off = base + rng.randrange(16 * u - 64)
    cookies.append(ub.aio_pwrite(b"\x33" * rng.randrange(1, 64), off))
while ua.aio_in_flight() or ub.aio_in_flight():
    for g in (ua, ub):
        if g.aio_in_flight():
            g.poll(0)
got = ua.pread(16 * u, base)
assert set(got) <= {0x22, 0x33}, "a partial write straddled a whole-unit write: %s" % set(got)
ua.pwrite(bytes(range(256)) * (4 * u // 256), base)  # units 0-3: data
uzram = os.environ.get("kind") == "uzram"
if uzram:  # a trim frees whole blocks (advisory elsewhere: nbdkit may keep the bytes)
    ua.trim(4096, base + u + 8192)  # blocks 2-3 of unit 1: holes
else:
    ua.zero(4096, base + u + 8192)
ua.zero(4096, base + 2 * u + 4096)  # block 1 of unit 2: a hole
ua.flush()
want = bytearray(bytes(range(256)) * (4 * u // 256))
want[u + 8192:u + 12288] = b"\0" * 4096
want[2 * u + 4096:2 * u + 8192] = b"\0" * 4096
assert ua.pread(4 * u, base) == bytes(want), "partial-unit trim or zero"
assert ua.pread(100, base + u - 50) == bytes(want[u - 50:u + 50]), "read across units"
if uzram:  # nbdkit memory keeps partly zeroed pages allocated
    ext = extents(ua, base, 4 * u)
    assert flags_at(ext, base, base + u + 8192) == nbd.STATE_HOLE | nbd.STATE_ZERO, ext
    assert flags_at(ext, base, base + 2 * u + 4096) == nbd.STATE_HOLE | nbd.STATE_ZERO, ext
    for pos in (base, base + u, base + u + 12288, base + 2 * u + 8192, base + 3 * u):
        assert flags_at(ext, base, pos) == 0, (pos - base, ext)
ua.shutdown()
ub.shutdown()
print("ok units")

# DISC, then a new connection still sees the data.
a.shutdown()
b.shutdown()
h.shutdown()
c = connect(meta=False)
assert c.pread(20000, 4093)[:8190 - 4093] == data[:8190 - 4093]
c.shutdown()
print("ok disconnect")
