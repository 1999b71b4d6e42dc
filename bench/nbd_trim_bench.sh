#!/usr/bin/env bash
# TRIM of a whole 1 GiB export through NBD (docs/benchmarks.md#discard-and-trim), for one
# or more uzram binaries in the same run (e.g. this tree's and a pre-change commit's):
# `uzram serve --size 1G --algo lz4`, nbdcopy of the page corpus (repeated to 1 GiB),
# then one NBD_CMD_TRIM of the whole export from nbdsh, timed in the client (request to
# reply). Checks that the export then reads as zeros and the store holds nothing.
#   bench/nbd_trim_bench.sh CORPUS ROUNDS UZRAM [UZRAM...]
# Needs nbdcopy and nbdsh (Debian: libnbd-bin python3-libnbd); exits 77 without them.
set -euo pipefail
corpus=${1:?usage: $0 CORPUS ROUNDS UZRAM [UZRAM...]}
rounds=${2:?usage: $0 CORPUS ROUNDS UZRAM [UZRAM...]}
shift 2
# nbdsh runs `python3` from PATH: prefer the system one, which has the nbd module.
export PATH=/usr/bin:$PATH
for t in nbdcopy nbdsh; do
  command -v "$t" >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
nbdsh -c pass 2>/dev/null || { echo "SKIP: nbdsh cannot import the nbd module"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
size=$((1 << 30))
cbytes=$(stat -c %s "$corpus")
while [[ $(stat -c %s "$tmp/data" 2>/dev/null || echo 0) -lt $size ]]; do
  cat "$corpus" >> "$tmp/data"
done
truncate -s "$size" "$tmp/data"
export tmp size
echo "corpus $corpus ($((cbytes >> 20)) MiB) repeated to 1 GiB; $rounds rounds per binary"
for r in $(seq "$rounds"); do
  for uzram in "$@"; do
    "$uzram" serve -U - --control "$tmp/c.sock" --size "$size" --algo lz4 --run '
      nbdcopy "$tmp/data" "$uri"
      nbdsh -u "$uri" -c "
import time
t = time.monotonic()
h.trim($size, 0)
dt = time.monotonic() - t
z = bytearray(1 << 20)
for off in range(0, $size, 64 << 20):
    assert h.pread(1 << 20, off) == z, \"not zero after trim at %d\" % off
print(\"%.1f\" % (dt * 1e3))
" > "$tmp/ms"' >/dev/null
    echo "round $r  $(cat "$tmp/ms") ms  $uzram"
  done
done
