# tests/nbd/slowloris_test.py URI [options] - slow handshakes against the admission policy:
# ATTACKERS clients connect and send one byte every INTERVAL seconds, reconnecting at once
# whenever the server closes them; TRANSMISSION clients entered transmission before the
# attack. Meanwhile a good client connects every second and must complete NBD_OPT_GO and a
# READ within DEADLINE seconds; afterwards every transmission client must still be served.
# Prints the measured figures (probe latencies, attacker connection lifetimes). The export
# must be at least 32 MiB + 4 KiB per transmission client; only its second half is written.
import argparse
import selectors
import socket
import statistics
import struct
import sys
import threading
import time

import nbdraw as r

ap = argparse.ArgumentParser()
ap.add_argument("uri")
ap.add_argument("--attackers", type=int, default=100)
ap.add_argument("--interval", type=float, default=3.0)
ap.add_argument("--duration", type=float, default=20.0)
ap.add_argument("--transmission", type=int, default=40)
ap.add_argument("--deadline", type=float, default=10.0)
ap.add_argument("--tls", action="store_true", help="attackers trickle a ClientHello after STARTTLS")
ap.add_argument("--smart", action="store_true", help="attackers send their flags and a whole first "
                "option at once (the server gives them a thread), then trickle the second")
ap.add_argument("--expect-timeout", type=float, help="every attacker is closed by the handshake deadline, "
                "this many seconds after connecting (none is evicted: fewer attackers than slots)")
a = ap.parse_args()

stop = threading.Event()
lifetimes = []     # seconds each attacker connection lived (closed by the server)
attempts = [0]


def attack():
    sel = selectors.DefaultSelector()
    hello = r.client_hello() if a.tls else None
    # Per socket: [socket, connected-at, next send time, bytes to trickle, phase]
    def spawn():
        s = r.connect(a.uri)
        s.setblocking(False)
        st = [s, time.monotonic(), time.monotonic(), b"", 0]
        lst = struct.pack(">QII", r.IHAVEOPT, r.OPT_LIST, 0)
        if a.tls:  # flags + STARTTLS now; the ClientHello one byte at a time later
            st[3] = struct.pack(">I", 3) + struct.pack(">QII", r.IHAVEOPT, r.OPT_STARTTLS, 0) + hello
        elif a.smart:  # flags + NBD_OPT_LIST now; a second NBD_OPT_LIST byte by byte
            st[3] = struct.pack(">I", 3) + lst + lst
        else:  # everything byte by byte, after the flags
            st[3] = struct.pack(">I", 3) + lst
        sel.register(s, selectors.EVENT_READ, st)
        attempts[0] += 1

    for _ in range(a.attackers):
        spawn()
    while not stop.is_set():
        now = time.monotonic()
        for key, _ in sel.select(timeout=0.05):
            st = key.data
            try:
                data = st[0].recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:  # closed by the server: note how long it lived, come back at once
                lifetimes.append(time.monotonic() - st[1])
                sel.unregister(st[0])
                st[0].close()
                try:
                    spawn()
                except OSError:
                    pass
        for key in list(sel.get_map().values()):
            st = key.data
            if now >= st[2]:
                # First the flags (with STARTTLS, or a first option), then one byte at a time.
                n = 1 if st[4] > 0 else (4 + 16 if a.tls or a.smart else 4)
                chunk, st[3] = st[3][:n], st[3][n:]
                st[4] += 1
                try:
                    if chunk:
                        st[0].send(chunk)
                except OSError:
                    pass
                st[2] = now + a.interval
    for key in list(sel.get_map().values()):
        key.data[0].close()


def probe():
    t0 = time.monotonic()
    s = r.connect(a.uri, timeout=a.deadline * 3)
    r.hello(s)
    r.go(s)
    r.request(s, r.CMD_READ, 0, 4096)
    err, _, _ = r.simple_reply(s, 4096)
    assert err == 0, err
    r.request(s, r.CMD_DISC, 0, 0)
    s.close()
    return time.monotonic() - t0


tx = []
for i in range(a.transmission):
    s = r.connect(a.uri)
    r.hello(s)
    r.go(s)
    tx.append(s)

t = threading.Thread(target=attack)
t.start()
time.sleep(min(2.0, a.duration / 4))  # let the attack fill the slots
latencies = []
failures = 0
end = time.monotonic() + a.duration
while time.monotonic() < end:
    try:
        latencies.append(probe())
    except (OSError, EOFError, AssertionError) as e:
        failures += 1
        print("probe failed:", type(e).__name__, e)
    time.sleep(1)
stop.set()
t.join()

for i, s in enumerate(tx):  # each writes its own block of the export's second half
    r.request(s, r.CMD_WRITE, (32 << 20) + 4096 * i, 5, cookie=i, payload=b"x%04d" % i)
    assert r.simple_reply(s)[0] == 0, "transmission client %d lost" % i
    r.request(s, r.CMD_READ, (32 << 20) + 4096 * i, 5, cookie=i)
    assert r.simple_reply(s, 5)[2] == b"x%04d" % i
    s.close()

lat = sorted(latencies)
kind = "TLS" if a.tls else "smart" if a.smart else "plain"
print("attackers %d (%s, one byte every %.1f s), %d connections in transmission, %.0f s"
      % (a.attackers, kind, a.interval, a.transmission, a.duration))
print("good client: %d probes, %d failed; latency median %.3f s, max %.3f s"
      % (len(lat), failures, statistics.median(lat) if lat else -1, lat[-1] if lat else -1))
if lifetimes:
    print("attacker connections: %d made, %d closed by the server, lifetime median %.2f s, max %.2f s"
          % (attempts[0], len(lifetimes), statistics.median(lifetimes), max(lifetimes)))
ok = failures == 0 and lat and lat[-1] < a.deadline and (not lifetimes or max(lifetimes) < a.deadline + 2)
if a.expect_timeout is not None:
    # The deadline is absolute: trickling bytes (or TLS records) never extends it.
    if not lifetimes or min(lifetimes) < a.expect_timeout - 0.05 or max(lifetimes) > a.expect_timeout + 1.5:
        print("handshake deadline not enforced: want lifetimes of %.1f s" % a.expect_timeout)
        ok = False
sys.exit(0 if ok else 1)
